/// The delays between a named tunnel client's reconnection attempts (DESIGN §11): 0.5 s,
/// doubling up to 30 s, with jitter, without limit. Pure: the random fraction is passed in.
public struct TunnelReconnectBackoff: Sendable {
    /// The first delay.
    public var initial: Duration = NamedTunnelDefaults.reconnectInitialDelay
    /// The largest delay.
    public var maximum: Duration = NamedTunnelDefaults.reconnectMaximumDelay
    private var attempt = 0

    public init() {}

    /// The next delay, given `random` in `0..<1`: half the current step plus up to another
    /// half at random ("equal jitter"), so clients that lost the same server spread out but
    /// never retry at once.
    public mutating func nextDelay(random: Double) -> Duration {
        var step = initial
        for _ in 0..<min(attempt, 16) {
            step = step * 2
            if step >= maximum { break }
        }
        step = min(step, maximum)
        attempt += 1
        let fraction = random.isFinite ? min(max(random, 0), 1) : 0
        return step / 2 + (step / 2) * fraction
    }

    /// Starts again from ``initial`` (after a session that was established).
    public mutating func reset() { attempt = 0 }
}
