import RelayCore
import Testing

@Suite struct TokenBucketDelayTests {
    @Test func noDelayWhileTokensLast() {
        var bucket = TokenBucket(bitsPerSecond: 8_000_000)  // 1 MB/s, depth 100 KB
        #expect(bucket.nanosecondsUntilAvailable(1200, now: RelayInstant(nanoseconds: 0)) == 0)
    }

    @Test func delayIsTheTimeToRefillTheMissingBytes() {
        var bucket = TokenBucket(bitsPerSecond: 8_000_000)
        let start = RelayInstant(nanoseconds: 1_000)
        _ = bucket.canConsume(0, now: start)
        bucket.consume(Int(bucket.depth))  // empty
        // 1000 bytes at 1 MB/s: 1 ms.
        #expect(bucket.nanosecondsUntilAvailable(1000, now: start) == 1_000_000)
        // Half a millisecond later, half of it is left.
        #expect(bucket.nanosecondsUntilAvailable(1000, now: RelayInstant(nanoseconds: 501_000)) == 500_000)
        #expect(bucket.nanosecondsUntilAvailable(1000, now: RelayInstant(nanoseconds: 1_001_000)) == 0)
    }

    @Test func unlimitedNeverWaits() {
        var bucket = TokenBucket(bitsPerSecond: 0)
        #expect(bucket.nanosecondsUntilAvailable(1 << 20, now: RelayInstant(nanoseconds: 5)) == 0)
    }
}
