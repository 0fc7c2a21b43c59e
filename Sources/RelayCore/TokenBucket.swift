/// A token bucket in bytes, refilled from the time passed in. Rate in bit/s; depth 100 ms of
/// the rate but at least 1500 bytes (DESIGN §5). A rate of 0 means no limit.
public struct TokenBucket: Sendable, Hashable {
    public private(set) var bitsPerSecond: UInt64
    /// Bucket depth in bytes.
    public private(set) var depth: Double
    private var tokens: Double
    private var last: RelayInstant?

    public init(bitsPerSecond: UInt64) {
        self.bitsPerSecond = bitsPerSecond
        self.depth = Self.depth(for: bitsPerSecond)
        self.tokens = depth
    }

    static func depth(for bitsPerSecond: UInt64) -> Double {
        max(1500, Double(bitsPerSecond) / 8 / 10)
    }

    public var isUnlimited: Bool { bitsPerSecond == 0 }

    /// Changes the rate (reload); the fill level is kept, capped to the new depth.
    public mutating func setRate(_ bitsPerSecond: UInt64) {
        self.bitsPerSecond = bitsPerSecond
        depth = Self.depth(for: bitsPerSecond)
        tokens = min(tokens, depth)
    }

    private mutating func refill(now: RelayInstant) {
        guard let previous = last else {
            last = now
            return
        }
        if now > previous {
            let elapsed = Double(now.nanoseconds - previous.nanoseconds) / 1e9
            tokens = min(depth, tokens + elapsed * Double(bitsPerSecond) / 8)
            last = now
        }
    }

    /// Whether `bytes` may pass now (without taking them).
    public mutating func canConsume(_ bytes: Int, now: RelayInstant) -> Bool {
        if isUnlimited { return true }
        refill(now: now)
        return tokens >= Double(bytes)
    }

    /// Takes `bytes` (after `canConsume` said yes).
    public mutating func consume(_ bytes: Int) {
        if isUnlimited { return }
        tokens -= Double(bytes)
    }

    /// How long until `bytes` may pass, in nanoseconds (0: now). Used to pace a sender that
    /// can wait (the TCP fallback) instead of dropping its datagrams.
    public mutating func nanosecondsUntilAvailable(_ bytes: Int, now: RelayInstant) -> UInt64 {
        guard !canConsume(bytes, now: now) else { return 0 }
        let missing = min(Double(bytes), depth) - tokens
        guard missing > 0 else { return 0 }
        return UInt64((missing * 8 / Double(bitsPerSecond) * 1e9).rounded(.up))
    }

    /// `canConsume` then `consume`.
    public mutating func tryConsume(_ bytes: Int, now: RelayInstant) -> Bool {
        guard canConsume(bytes, now: now) else { return false }
        consume(bytes)
        return true
    }
}
