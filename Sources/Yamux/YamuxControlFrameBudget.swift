/// A token bucket over the frames a peer can make us work for without sending data: pings
/// we must answer, resets, SYNs we refuse (each answered with RST), frames for streams that
/// are gone, empty window updates and data frames, GoAways.
///
/// Pure: time comes in as `now`. Legitimate peers stay far inside the default budget; a
/// flood exhausts it and the session ends with GoAway(protocol error) — the yamux answer to
/// the ping, reset and rapid-reset floods HTTP/2 servers defend against.
struct YamuxControlFrameBudget: Hashable, Sendable {
    typealias Instant = ContinuousClock.Instant

    private let burst: Int
    private let perSecond: Int
    private var available: Double
    private var refilledAt: Instant

    init(burst: Int, perSecond: Int, now: Instant) {
        self.burst = max(1, burst)
        self.perSecond = max(0, perSecond)
        self.available = Double(self.burst)
        self.refilledAt = now
    }

    /// Takes one frame from the budget; `false` when the budget is exhausted.
    mutating func charge(now: Instant) -> Bool {
        if now > refilledAt {
            let elapsed = refilledAt.duration(to: now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            available = min(Double(burst), available + seconds * Double(perSecond))
            refilledAt = now
        }
        guard available >= 1 else { return false }
        available -= 1
        return true
    }

    /// The error that ends a session whose peer exhausted the budget.
    var exhaustedError: YamuxError {
        .controlFrameFlood(burst: burst, perSecond: perSecond)
    }
}
