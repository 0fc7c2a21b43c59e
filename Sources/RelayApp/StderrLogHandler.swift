#if canImport(Glibc)
import Glibc
#endif
import Logging
import RelayCore
import Synchronization

/// The process-wide log level, changed by SIGHUP reload without rebuilding loggers.
public final class LogLevelBox: Sendable {
    private let level: Mutex<Logger.Level>
    public init(_ level: Logger.Level) { self.level = Mutex(level) }
    public var value: Logger.Level {
        get { level.withLock { $0 } }
        set { level.withLock { $0 = newValue } }
    }
}

/// swift-log handler writing one line per event to stderr: JSON (default) or plain text.
public struct StderrLogHandler: LogHandler {
    /// One JSON object per line, or `level label: message key=value` text.
    public enum Format: String, Sendable { case json, text }

    public var metadata: Logger.Metadata = [:]
    let levelBox: LogLevelBox
    let label: String
    let format: Format

    public var logLevel: Logger.Level {
        get { levelBox.value }
        set { levelBox.value = newValue }
    }

    public init(label: String, level: LogLevelBox, format: Format) {
        self.label = label
        self.levelBox = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level
        let message = event.message
        var merged = self.metadata
        if let explicit = event.metadata { merged.merge(explicit) { $1 } }
        if let error = event.error { merged["error"] = "\(error)" }
        let stamp = Self.timestamp()
        var out: String
        switch format {
        case .json:
            out = "{\"ts\":\"\(stamp)\",\"level\":\"\(level.rawValue)\",\"msg\":\(Self.quote(message.description))"
            for key in merged.keys.sorted() {
                if let value = merged[key] { out += ",\(Self.quote(key)):\(Self.quote(value.description))" }
            }
            out += "}\n"
        case .text:
            out = "\(stamp) \(level.rawValue.uppercased()) \(message.description)"
            for key in merged.keys.sorted() {
                if let value = merged[key] { out += " \(key)=\(value.description)" }
            }
            out += "\n"
        }
        var bytes = Array(out.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// RFC 3339 UTC with milliseconds.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var seconds = ts.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }

    static func quote(_ s: String) -> String { JSONText.quote(s) }
}
