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
