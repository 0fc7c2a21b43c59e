import Testing
@testable import RelayCore

@Suite struct TokenBucketTests {
    @Test func depthIsAHundredMillisecondsButAtLeast1500Bytes() {
        #expect(TokenBucket(bitsPerSecond: 2_000_000).depth == 25_000)
        #expect(TokenBucket(bitsPerSecond: 8_000).depth == 1500)
    }

    @Test func unlimitedAlwaysPasses() {
        var b = TokenBucket(bitsPerSecond: 0)
        for i in 0..<1000 {
            let passed = b.tryConsume(1_000_000, now: .seconds(Double(i) * 1e-6))
            #expect(passed)
        }
    }

    /// DESIGN §5: 5 Mbit/s offered against a 2 Mbit/s cap, 1200-byte datagrams: delivered rate
    /// over every 1 s window after the first 0.5 s is within ±5 % of the cap.
    @Test func deliveredRateStaysWithinFivePercentOfTheCap() {
        var bucket = TokenBucket(bitsPerSecond: 2_000_000)
        let interval = 1200.0 * 8 / 5_000_000  // seconds between datagrams at 5 Mbit/s
        var delivered: [(Double, Int)] = []
        var t = 0.0
        while t < 4.0 {
            if bucket.tryConsume(1200, now: .seconds(t)) { delivered.append((t, 1200)) }
            t += interval
        }
        var start = 0.5
        while start + 1.0 <= 4.0 {
            let bytes = delivered.filter { $0.0 >= start && $0.0 < start + 1.0 }.reduce(0) { $0 + $1.1 }
            let rate = Double(bytes) * 8
            #expect(abs(rate - 2_000_000) / 2_000_000 <= 0.05, "window at \(start): \(rate) bit/s")
            start += 0.1
        }
    }
}

@Suite struct CIDRSetTests {
    @Test func parsesAndMatches() throws {
        let set = try CIDRSet(parsing: ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"])
        #expect(set.contains([10, 200, 3, 4]))
        #expect(!set.contains([11, 0, 0, 1]))
        #expect(set.contains([192, 168, 1, 7]))
        #expect(!set.contains([192, 168, 1, 8]))
        #expect(set.contains(IPAddressParser.parse("2001:db8:ffff::5")!))
        #expect(!set.contains(IPAddressParser.parse("2001:db9::5")!))
        #expect(set.contains(IPAddressParser.parse("::1")!))
        #expect(set.contains(IPAddressParser.parse("::ffff:10.1.2.3")!))  // mapped v4
        #expect(try CIDRSet(parsing: ["0.0.0.0/0"]).contains([8, 8, 8, 8]))
    }

    @Test func rejectsBadEntries() {
        for bad in ["10.0.0.0/33", "10.0.0/8", "300.1.1.1", "host.example", "2001:db8::/129", "1::2::3", "01.2.3.4", ""] {
            #expect(throws: CIDRError.self) { try CIDRSet(parsing: [bad]) }
        }
    }

    @Test func ipv6Forms() {
        #expect(IPAddressParser.parse("::")! == [UInt8](repeating: 0, count: 16))
        #expect(IPAddressParser.parse("1:2:3:4:5:6:7:8")!.count == 16)
        #expect(IPAddressParser.parse("[fe80::1]")!.last == 1)
        #expect(IPAddressParser.parse("1:2:3:4:5:6:7:8:9") == nil)
        #expect(IPAddressParser.parse(":1") == nil)
    }
}

@Suite struct IPRateLimiterTests {
    @Test func limitsPerWindow() {
        var r = IPRateLimiter(limit: 3, window: .seconds(60))
        let ip: [UInt8] = [1, 2, 3, 4]
        var decisions: [IPRateLimiter.Decision] = []
        for i in 0..<5 { decisions.append(r.record(ip, now: .seconds(Double(i)))) }
        #expect(decisions == [.allowed, .allowed, .allowed, .limited, .limited])
        let other = r.record([5, 6, 7, 8], now: .seconds(5))
        #expect(other == .allowed)
        let later = r.record(ip, now: .seconds(61))
        #expect(later == .allowed)
    }

    @Test func tableIsBounded() {
        var r = IPRateLimiter(limit: 10, window: .seconds(60), capacity: 100)
        for i in 0..<10_000 { _ = r.record([UInt8(i >> 8), UInt8(i & 0xFF), 0, 1], now: .seconds(1)) }
        #expect(r.trackedCount <= 100)
    }
}

@Suite struct IPRateLimiterHostileTests {
    @Test func fullTableNeverResetsACount() {
        var r = IPRateLimiter(limit: 2, window: .seconds(60), capacity: 16)
        let victim: [UInt8] = [9, 9, 9, 9]
        #expect(r.record(victim, now: .seconds(0)) == .allowed)
        #expect(r.record(victim, now: .seconds(0)) == .allowed)
        #expect(r.record(victim, now: .seconds(0)) == .limited)
        // Spray enough other sources to fill the table many times over.
        for i in 0..<1000 { _ = r.record([10, 0, UInt8(i >> 8), UInt8(i & 0xFF)], now: .seconds(1)) }
        #expect(r.trackedCount <= 16)
        #expect(r.record(victim, now: .seconds(2)) == .limited)
        // Once the windows end, the victim counts afresh.
        #expect(r.record(victim, now: .seconds(61)) == .allowed)
    }

    @Test func newSourcesShareAnOverflowWindowWhileFull() {
        var r = IPRateLimiter(limit: 3, window: .seconds(60), capacity: 16)
        for i in 0..<15 { _ = r.record([1, 1, 1, UInt8(i)], now: .seconds(0)) }  // 15 own slots + 1 overflow
        var decisions: [IPRateLimiter.Decision] = []
        for i in 0..<5 { decisions.append(r.record([2, 2, 2, UInt8(i)], now: .seconds(1))) }
        #expect(decisions == [.allowed, .allowed, .allowed, .limited, .limited])
    }

    @Test func ipv6IsKeyedBySlash64() {
        var r = IPRateLimiter(limit: 2, window: .seconds(60))
        let prefix: [UInt8] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1]
        #expect(r.record(prefix + [0, 0, 0, 0, 0, 0, 0, 1], now: .seconds(0)) == .allowed)
        #expect(r.record(prefix + [0, 0, 0, 0, 0, 0, 0, 2], now: .seconds(0)) == .allowed)
        #expect(r.record(prefix + [0xff, 0, 0, 0, 0, 0, 0, 3], now: .seconds(0)) == .limited)
        #expect(r.record([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 2] + [UInt8](repeating: 0, count: 8), now: .seconds(0)) == .allowed)
        #expect(IPRateLimiter.sourceKey([1, 2, 3, 4]) == [1, 2, 3, 4])
    }
}

@Suite struct LogThrottleTests {
    @Test func firstEventLogsThenOncePerIntervalWithACount() {
        var t = LogThrottle<String>(interval: .seconds(1))
        #expect(t.record("a", now: .seconds(0)) == .log(suppressed: 0))
        for i in 1...9 { #expect(t.record("a", now: .seconds(Double(i) / 10)) == .suppress) }
        #expect(t.record("b", now: .seconds(0.5)) == .log(suppressed: 0))
        #expect(t.record("a", now: .seconds(1.0)) == .log(suppressed: 9))
        #expect(t.record("a", now: .seconds(1.5)) == .suppress)
    }

    @Test func tableIsBoundedAndEvictionOnlyMakesTheNextEventLog() {
        var t = LogThrottle<Int>(interval: .seconds(1), capacity: 8)
        var lines = 0
        for i in 0..<10_000 {
            if case .log = t.record(i % 100, now: .seconds(0)) { lines += 1 }
            #expect(t.trackedCount <= 8)
        }
        #expect(lines <= 10_000)
        #expect(t.record(5, now: .seconds(10)) == .log(suppressed: 0) || t.trackedCount <= 8)
    }
}
