/// The agent's reconnect delays (DESIGN §12): 0.5 s doubling to 30 s, with jitter. The
/// jitter is "equal": attempt n waits between half and all of min(cap, base × 2ⁿ), so
/// agents that lost the same server spread out without ever retrying at once. Pure: the
/// random number is passed in.
public struct ReconnectBackoff: Sendable, Hashable {
    public var base: Duration
    public var cap: Duration

    public init(base: Duration = ProxyDefaults.reconnectBase, cap: Duration = ProxyDefaults.reconnectCap) {
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
        let u = unit.isFinite ? min(max(0, unit), 1) : 0
        return ceiling(attempt: attempt) * (0.5 + 0.5 * u)
    }
}
