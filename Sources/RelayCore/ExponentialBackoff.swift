/// Exponential backoff with jitter: attempt n waits a random time up to min(cap, base × 2ⁿ).
/// Pure (the random source is passed in).
public struct ExponentialBackoff: Sendable, Hashable {
    /// How much of the ceiling is random.
    public enum Jitter: Sendable, Hashable {
        /// Uniform in [0, ceiling] (the relay's clients, Redis reconnects).
        case full
        /// Uniform in [ceiling / 2, ceiling]: never retries at once (the egress agent).
        case equal
    }

    public var base: Duration
    public var cap: Duration
    public var jitter: Jitter

    public init(base: Duration = .milliseconds(100), cap: Duration = .seconds(5), jitter: Jitter = .full) {
        self.base = base
        self.cap = cap
        self.jitter = jitter
    }

    /// The upper bound for attempt `n` (0-based).
    public func ceiling(attempt: Int) -> Duration {
        let shift = min(max(0, attempt), 30)
        let grown = base * (1 << shift)
        return grown > cap ? cap : grown
    }

    /// The delay before attempt `n`, given a uniform random number in [0, 1).
    public func delay(attempt: Int, unit: Double) -> Duration {
        let u = unit.isFinite ? min(max(0, unit), 1) : 0
        switch jitter {
        case .full: return ceiling(attempt: attempt) * u
        case .equal: return ceiling(attempt: attempt) * (0.5 + 0.5 * u)
        }
    }
}
