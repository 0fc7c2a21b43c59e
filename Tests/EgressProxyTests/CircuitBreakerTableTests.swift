import RelayCore
import Testing

@testable import EgressProxy

@Suite struct CircuitBreakerTableTests {
    let t0 = ContinuousClock.now

    @Test func fiveFailuresOpenForSixtySecondsThenOneTrial() {
        var table = CircuitBreakerTable<String>()
        for i in 0..<4 {
            #expect(table.admit("a:80", now: t0) == .allowed)
            let opened = table.recordFailure("a:80", now: t0 + .seconds(i))
            #expect(!opened)
        }
        #expect(table.admit("a:80", now: t0) == .allowed)
        let opened = table.recordFailure("a:80", now: t0 + .seconds(5))
        #expect(opened)
        #expect(table.admit("a:80", now: t0 + .seconds(6)) == .open)
        #expect(table.admit("other:80", now: t0 + .seconds(6)) == .allowed)
        #expect(table.openCount(now: t0 + .seconds(6)) == 1)
        #expect(table.admit("a:80", now: t0 + .seconds(64)) == .open)
        #expect(table.admit("a:80", now: t0 + .seconds(65)) == .trial)
        // Only one trial at a time.
        #expect(table.admit("a:80", now: t0 + .seconds(65)) == .open)
        #expect(table.openCount(now: t0 + .seconds(65)) == 1)
        table.recordSuccess("a:80")
        #expect(table.admit("a:80", now: t0 + .seconds(66)) == .allowed)
        #expect(table.openCount(now: t0 + .seconds(66)) == 0)
    }

    @Test func aFailedTrialOpensAgain() {
        var table = CircuitBreakerTable<String>(failureThreshold: 2, openDuration: .seconds(10))
        table.recordFailure("d", now: t0)
        table.recordFailure("d", now: t0)
        #expect(table.admit("d", now: t0 + .seconds(10)) == .trial)
        let reopened = table.recordFailure("d", now: t0 + .seconds(11))
        #expect(reopened)
        #expect(table.admit("d", now: t0 + .seconds(20)) == .open)
        #expect(table.admit("d", now: t0 + .seconds(21)) == .trial)
    }

    @Test func successResetsTheCount() {
        var table = CircuitBreakerTable<String>(failureThreshold: 3)
        table.recordFailure("d", now: t0)
        table.recordFailure("d", now: t0)
        table.recordSuccess("d")
        table.recordFailure("d", now: t0)
        table.recordFailure("d", now: t0)
        #expect(table.admit("d", now: t0) == .allowed)
    }

    @Test func abandonedTrialLetsTheNextTry() {
        var table = CircuitBreakerTable<String>(failureThreshold: 1, openDuration: .seconds(1))
        table.recordFailure("d", now: t0)
        #expect(table.admit("d", now: t0 + .seconds(2)) == .trial)
        table.abandonTrial("d", now: t0 + .seconds(2))
        #expect(table.admit("d", now: t0 + .seconds(2)) == .trial)
    }

    @Test func tableIsBounded() {
        var table = CircuitBreakerTable<Int>(failureThreshold: 1, openDuration: .seconds(60), capacity: 100)
        for key in 0..<10_000 { table.recordFailure(key, now: t0) }
        #expect(table.trackedCount == 100)
        #expect(table.admit(9_999, now: t0) == .open)
        #expect(table.admit(0, now: t0) == .allowed)
        // Closed records are forgotten before open circuits.
        var mixed = CircuitBreakerTable<Int>(failureThreshold: 2, capacity: 2)
        mixed.recordFailure(1, now: t0)
        mixed.recordFailure(1, now: t0)  // open
        mixed.recordFailure(2, now: t0)  // closed(1)
        mixed.recordFailure(3, now: t0)  // evicts 2
        #expect(mixed.admit(1, now: t0) == .open)
        #expect(mixed.trackedCount == 2)
    }
}

@Suite struct ReconnectBackoffTests {
    @Test func doublesToTheCapWithJitter() {
        let backoff = ExponentialBackoff(base: ProxyDefaults.reconnectBase, cap: ProxyDefaults.reconnectCap, jitter: .equal)
        #expect(backoff.ceiling(attempt: 0) == .milliseconds(500))
        #expect(backoff.ceiling(attempt: 1) == .seconds(1))
        #expect(backoff.ceiling(attempt: 5) == .seconds(16))
        #expect(backoff.ceiling(attempt: 6) == .seconds(30))
        #expect(backoff.ceiling(attempt: 1000) == .seconds(30))
        #expect(backoff.delay(attempt: 0, unit: 0) == .milliseconds(250))
        #expect(backoff.delay(attempt: 0, unit: 1) == .milliseconds(500))
        #expect(backoff.delay(attempt: 0, unit: .nan) == .milliseconds(250))
        #expect(backoff.delay(attempt: -3, unit: 2) == .milliseconds(500))
    }
}
