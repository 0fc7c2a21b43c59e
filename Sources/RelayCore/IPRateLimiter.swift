/// Per-source-IP event counting in fixed windows (`"10/min"`), in a bounded table: when it is
/// full, windows that have ended are dropped first, then the whole table is reset (an attacker
/// spraying source addresses cannot grow memory; the cost is a brief amnesty).
public struct IPRateLimiter: Sendable {
    /// The answer for one event.
    public enum Decision: Sendable, Hashable { case allowed, limited }

    struct Window: Sendable {
        var start: RelayInstant
        var count: Int
    }

    public private(set) var limit: Int
    public private(set) var window: Duration
    public let capacity: Int
    private var windows: [[UInt8]: Window] = [:]

    /// `limit` events per `window`; `limit` 0 = no limit.
    public init(limit: Int, window: Duration, capacity: Int = 100_000) {
        self.limit = limit
        self.window = window
        self.capacity = max(16, capacity)
    }

    /// New limit (reload); counts are kept.
    public mutating func reconfigure(limit: Int, window: Duration) {
        self.limit = limit
        self.window = window
    }

    public var trackedCount: Int { windows.count }

    /// Counts one event for `address` and says whether it is within the limit.
    public mutating func record(_ address: [UInt8], now: RelayInstant) -> Decision {
        guard limit > 0 else { return .allowed }
        if var w = windows[address] {
            if now.since(w.start) >= window {
                w = Window(start: now, count: 0)
            }
            w.count += 1
            windows[address] = w
            return w.count > limit ? .limited : .allowed
        }
        if windows.count >= capacity {
            windows = windows.filter { now.since($0.value.start) < window }
            if windows.count >= capacity { windows.removeAll(keepingCapacity: true) }
        }
        windows[address] = Window(start: now, count: 1)
        return 1 > limit ? .limited : .allowed
    }
}
