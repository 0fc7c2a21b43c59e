/// Exponential backoff with full jitter: attempt n waits a uniform random time in
/// [0, min(cap, base × 2ⁿ)]. Pure (the random source is passed in).
public struct ExponentialBackoff: Sendable, Hashable {
    public var base: Duration
    public var cap: Duration

    public init(base: Duration = .milliseconds(100), cap: Duration = .seconds(5)) {
        self.base = base
        self.cap = cap
    }

    /// The upper bound for attempt `n` (0-based).
    public func ceiling(attempt: Int) -> Duration {
        let shift = min(max(0, attempt), 30)
        let grown = base * (1 << shift)
        return grown > cap ? cap : grown
    }

    /// The delay before attempt `n`, given a uniform random number in [0, 1).
    public func delay(attempt: Int, unit: Double) -> Duration {
        ceiling(attempt: attempt) * min(max(0, unit), 1)
    }
}
