/// Rate-limits repeated log lines per key (a source address, a connection): the first event
/// of a key is logged, then at most one line per `interval`, which carries how many events
/// were not logged since the previous line (DESIGN §6 v3: "repeated log lines for one
/// blocked or rate-limited source at most once per second, with a count").
///
/// Pure: time is a parameter. The table is bounded: when it is full, keys whose last line is
/// older than `interval` are forgotten first, then the oldest half. Forgetting a key only
/// means its next event is logged at once, so an attacker spraying keys gains nothing.
public struct LogThrottle<Key: Hashable & Sendable>: Sendable {
    /// What to do with one event.
    public enum Verdict: Sendable, Hashable {
        /// Log it; `suppressed` events of this key were not logged since the previous line.
        case log(suppressed: Int)
        /// Do not log it (counted for the next line).
        case suppress
    }

    struct Entry: Sendable {
        var lastLogged: RelayInstant
        var suppressed: Int
    }

    /// The shortest time between two lines of one key.
    public let interval: Duration
    /// The most keys remembered.
    public let capacity: Int
    private var entries: [Key: Entry] = [:]

    public init(interval: Duration = .seconds(1), capacity: Int = 4096) {
        self.interval = interval
        self.capacity = max(2, capacity)
    }

    /// The keys remembered now.
    public var trackedCount: Int { entries.count }

    /// Records one event of `key` at `now`.
    public mutating func record(_ key: Key, now: RelayInstant) -> Verdict {
        if var entry = entries[key] {
            if now.since(entry.lastLogged) >= interval {
                let suppressed = entry.suppressed
                entry = Entry(lastLogged: now, suppressed: 0)
                entries[key] = entry
                return .log(suppressed: suppressed)
            }
            entry.suppressed &+= 1
            entries[key] = entry
            return .suppress
        }
        if entries.count >= capacity { evict(now: now) }
        entries[key] = Entry(lastLogged: now, suppressed: 0)
        return .log(suppressed: 0)
    }

    private mutating func evict(now: RelayInstant) {
        entries = entries.filter { now.since($0.value.lastLogged) < interval }
        guard entries.count >= capacity else { return }
        let byAge = entries.sorted { $0.value.lastLogged < $1.value.lastLogged }
        for (key, _) in byAge.prefix(entries.count / 2) { entries[key] = nil }
    }
}
