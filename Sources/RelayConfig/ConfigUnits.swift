/// Parsers for the unit syntax of DESIGN §2. Each returns `nil` for text it does not accept;
/// the caller turns that into an error naming the key. All arithmetic is overflow-checked.
public enum ConfigUnits {
    /// Seconds as an integer, or a number with `ms`, `s`, `m`, `h` or `d`: `30`, `"30s"`, `"15m"`, `"24h"`.
    public static func duration(_ text: String) -> Duration? {
        let t = text.trimmed.lowercased()
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, milliseconds) in units where t.hasSuffix(suffix) {
            let number = String(t.dropLast(suffix.count)).trimmed
            // "ms" must not be read as "m" + "s"; try the longest suffix first (listed first).
            guard let n = Int64(number), n >= 0 else { continue }
            let (total, overflow) = n.multipliedReportingOverflow(by: milliseconds)
            guard !overflow else { return nil }
            return .milliseconds(total)
        }
        guard let seconds = Int64(t), seconds >= 0, seconds < Int64.max / 1000 else { return nil }
        return .seconds(seconds)
    }

    /// Bytes as an integer, or with an SI (`kB`/`KB`, `MB`, `GB`, `TB` = 10^3…) or IEC
    /// (`KiB`, `MiB`, `GiB`, `TiB` = 2^10…) suffix, optionally `B` alone.
    public static func size(_ text: String) -> UInt64? {
        let t = text.trimmed
        let units: [(String, UInt64)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
            ("kB", 1_000), ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
            ("B", 1),
        ]
        return scaled(t, units: units)
    }

    /// Bits per second as an integer, or with `bps`, `kbps`, `Mbps`, `Gbps` (powers of 10).
    public static func bitRate(_ text: String) -> UInt64? {
        let t = text.trimmed
        let units: [(String, UInt64)] = [
            ("kbps", 1_000), ("Kbps", 1_000), ("Mbps", 1_000_000), ("mbps", 1_000_000), ("Gbps", 1_000_000_000),
            ("gbps", 1_000_000_000), ("bps", 1),
        ]
        return scaled(t, units: units)
    }

    /// Events per window: `"10/min"`, `"2/s"`, `"100/h"`, or an integer meaning per `defaultWindow`.
    public static func eventRate(_ text: String, defaultWindow: Duration) -> EventRate? {
        let t = text.trimmed.lowercased()
        if let slash = t.firstIndex(of: "/") {
            guard let count = Int(t[..<slash].trimmingCharacters(in: " "), radix: 10), count >= 0 else { return nil }
            let window: Duration
            switch t[t.index(after: slash)...].trimmingCharacters(in: " ") {
            case "s", "sec", "second": window = .seconds(1)
            case "m", "min", "minute": window = .seconds(60)
            case "h", "hour": window = .seconds(3600)
            default: return nil
            }
            return EventRate(count: count, window: window)
        }
        guard let count = Int(t), count >= 0 else { return nil }
        return EventRate(count: count, window: defaultWindow)
    }

    private static func scaled(_ t: String, units: [(String, UInt64)]) -> UInt64? {
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            let number = String(t.dropLast(suffix.count)).trimmed
            guard let n = UInt64(number) else { continue }
            let (total, overflow) = n.multipliedReportingOverflow(by: factor)
            return overflow ? nil : total
        }
        return UInt64(t)
    }
}

/// A count of events per time window (`"10/min"`).
public struct EventRate: Sendable, Hashable, CustomStringConvertible {
    /// Events allowed per window.
    public var count: Int
    /// The window.
    public var window: Duration

    public init(count: Int, window: Duration) {
        self.count = count
        self.window = window
    }

    public var description: String {
        switch window {
        case .seconds(1): return "\(count)/s"
        case .seconds(3600): return "\(count)/h"
        default: return "\(count)/min"
        }
    }
}

extension String {
    var trimmed: String { trimmingCharacters(in: " \t") }

    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let first = s.first, set.contains(first) { s = s.dropFirst() }
        while let last = s.last, set.contains(last) { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}
