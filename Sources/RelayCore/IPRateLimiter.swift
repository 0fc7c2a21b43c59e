/// Per-source event counting in fixed windows (`"10/min"`), in a bounded table. IPv6 sources
/// are keyed by their /64 (one subscriber's prefix), IPv4 by the address (DESIGN §6 v3).
/// When the table is full, windows that have ended are dropped; if it is still full, new
/// sources share one overflow window with the same limit until room frees up. Nobody's
/// count is ever reset early, so spraying source addresses cannot buy an amnesty.
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
    private var lastSweep: RelayInstant?

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

    /// The table key of a source: the address for IPv4 (4 bytes), its /64 for IPv6 (16 bytes).
    public static func sourceKey(_ address: [UInt8]) -> [UInt8] {
        address.count == 16 ? Array(address.prefix(8)) : address
    }

    /// The key shared by new sources while the table is full of live windows.
    private static let overflowKey: [UInt8] = []

    /// Counts one event for `address` and says whether it is within the limit.
    public mutating func record(_ address: [UInt8], now: RelayInstant) -> Decision {
        guard limit > 0 else { return .allowed }
        var key = Self.sourceKey(address)
        if windows[key] == nil, windows.count >= capacity - 1 {  // one slot stays for the overflow window
            // Sweeping is O(table), so at most once a second however fast sources arrive.
            if lastSweep.map({ now.since($0) >= .seconds(1) }) ?? true {
                lastSweep = now
                windows = windows.filter { now.since($0.value.start) < window }
            }
            if windows.count >= capacity - 1 { key = Self.overflowKey }
        }
        if var w = windows[key] {
            if now.since(w.start) >= window {
                w = Window(start: now, count: 0)
            }
            w.count &+= 1
            windows[key] = w
            return w.count > limit ? .limited : .allowed
        }
        windows[key] = Window(start: now, count: 1)
        return 1 > limit ? .limited : .allowed
    }

    /// Whether `address` has already passed the limit in its current window (nothing counted).
    public func isOverLimit(_ address: [UInt8], now: RelayInstant) -> Bool {
        guard limit > 0, let w = windows[Self.sourceKey(address)] else { return false }
        return now.since(w.start) < window && w.count > limit
    }
}
