import Testing
@testable import QUICTransport

@Suite struct HandshakeAdmissionTests {
    private let second: UInt64 = 1_000_000_000

    @Test func autoRetriesOnlyBeyondTheRateOfInitials() {
        var a = HandshakeAdmission(mode: .auto, acceptRate: 3, maximumHalfOpen: 100, autoRetryHalfOpenThreshold: 50)
        var decisions: [HandshakeAdmission.Decision] = []
        for _ in 0..<5 { decisions.append(a.decide(validated: false, halfOpen: 0, now: 10)) }
        #expect(decisions == [.accept, .accept, .accept, .retry(rateLimited: true), .retry(rateLimited: true)])
        // The next second starts afresh.
        #expect(a.decide(validated: false, halfOpen: 0, now: 10 + second) == .accept)
    }

    @Test func autoRetriesWhileManyHandshakesAreIncomplete() {
        var a = HandshakeAdmission(mode: .auto, acceptRate: 500, maximumHalfOpen: 1000, autoRetryHalfOpenThreshold: 100)
        #expect(a.decide(validated: false, halfOpen: 99, now: 0) == .accept)
        #expect(a.decide(validated: false, halfOpen: 100, now: 0) == .retry(rateLimited: true))
        // A validated client (it answered the Retry) is let in.
        #expect(a.decide(validated: true, halfOpen: 100, now: 0) == .accept)
    }

    @Test func theAcceptRateHoldsForValidatedClientsAndInNeverMode() {
        var a = HandshakeAdmission(mode: .auto, acceptRate: 2, maximumHalfOpen: 100, autoRetryHalfOpenThreshold: 50)
        #expect(a.decide(validated: true, halfOpen: 0, now: 0) == .accept)
        #expect(a.decide(validated: true, halfOpen: 0, now: 0) == .accept)
        #expect(a.decide(validated: true, halfOpen: 0, now: 0) == .refuse)
        var never = HandshakeAdmission(mode: .never, acceptRate: 2, maximumHalfOpen: 100, autoRetryHalfOpenThreshold: 50)
        #expect(never.decide(validated: false, halfOpen: 0, now: 0) == .accept)
        #expect(never.decide(validated: false, halfOpen: 0, now: 0) == .accept)
        #expect(never.decide(validated: false, halfOpen: 0, now: 0) == .refuse)
    }

    @Test func alwaysRetriesUnvalidatedWithoutCountingAHit() {
        var a = HandshakeAdmission(mode: .always, acceptRate: 0, maximumHalfOpen: 10, autoRetryHalfOpenThreshold: 5)
        #expect(a.decide(validated: false, halfOpen: 0, now: 0) == .retry(rateLimited: false))
        #expect(a.decide(validated: true, halfOpen: 0, now: 0) == .accept)
    }

    @Test func theHalfOpenCapRefusesInEveryMode() {
        for mode in [HandshakeAdmission.Mode.never, .always, .auto] {
            var a = HandshakeAdmission(mode: mode, acceptRate: 0, maximumHalfOpen: 10, autoRetryHalfOpenThreshold: 1000)
            #expect(a.decide(validated: true, halfOpen: 10, now: 0) == .refuse)
            #expect(a.decide(validated: true, halfOpen: 9, now: 0) == .accept)
        }
    }

    @Test func zeroRateMeansNoLimit() {
        var a = HandshakeAdmission(mode: .auto, acceptRate: 0, maximumHalfOpen: 1_000_000, autoRetryHalfOpenThreshold: 1_000_000)
        for _ in 0..<10_000 { #expect(a.decide(validated: false, halfOpen: 0, now: 0) == .accept) }
    }
}
