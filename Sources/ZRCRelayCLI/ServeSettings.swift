import Foundation

/// The settings `serve` reads at this stage: a key table with defaults, overridden by the
/// environment (`ZRC_RELAY_SECTION_KEY`) and then by flags (`--section.key value`).
/// (The full configuration layer with the TOML file comes with the operations work.)
struct ServeSettings {
    /// Every key `serve` knows, with its default (DESIGN §2).
    static let defaults: [String: String] = [
        "server.listen_addr": "0.0.0.0",
        "server.listen_port": "4433",
        "server.quic_cert_path": "certs/relay.crt",
        "server.quic_key_path": "certs/relay.key",
        "quic.max_idle_timeout": "30s",
        "quic.retry": "auto",
        "security.accept_rate": "500",
        "limits.keepalive_interval": "15s",
        "logging.level": "info",
        "logging.format": "json",
        "metrics.listen": "0.0.0.0:9464",
        "fallback.enabled": "true",
    ]

    private(set) var values: [String: String]

    init(flags: [String], environment: [String: String]) throws {
        values = Self.defaults
        for key in Self.defaults.keys {
            let envName = "ZRC_RELAY_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
            if let value = environment[envName] { values[key] = value }
        }
        var index = 0
        while index < flags.count {
            let flag = flags[index]
            guard flag.hasPrefix("--") else { throw CLIError("unexpected argument '\(flag)'") }
            var name = String(flag.dropFirst(2))
            var value: String
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            } else {
                guard index + 1 < flags.count else { throw CLIError("\(flag): missing value") }
                value = flags[index + 1]
                index += 1
            }
            let key = name.replacingOccurrences(of: "-", with: "_")
            guard Self.defaults[key] != nil else { throw CLIError("\(key): unknown key") }
            values[key] = value
            index += 1
        }
    }

    func string(_ key: String) -> String { values[key] ?? "" }

    func port(_ key: String) throws -> UInt16 {
        guard let port = UInt16(string(key)) else { throw CLIError("\(key): '\(string(key))' is not a port (0–65535)") }
        return port
    }

    func bool(_ key: String) throws -> Bool {
        switch string(key).lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw CLIError("\(key): '\(string(key))' is not true or false")
        }
    }

    func int(_ key: String) throws -> Int {
        guard let value = Int(string(key)), value >= 0 else { throw CLIError("\(key): '\(string(key))' is not a non-negative integer") }
        return value
    }

    /// Seconds, or a number with `ms`, `s`, `m` or `h`.
    func duration(_ key: String) throws -> Duration {
        let text = string(key).trimmingCharacters(in: .whitespaces)
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, ms) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if let n = Int64(number), n >= 0, n <= Int64.max / ms / 1000 { return .milliseconds(n * ms) }
            if suffix == "s", let n = Int64(text.dropLast(1)), n >= 0 { return .seconds(n) }
        }
        if let n = Int64(text), n >= 0, n <= 1 << 40 { return .seconds(n) }
        throw CLIError("\(key): '\(text)' is not a duration (e.g. 30, \"30s\", \"15m\", \"24h\")")
    }
}
