/// How a configuration value is written and checked.
public enum ConfigValueKind: Sendable, Hashable {
    /// Free text.
    case string
    /// A file path.
    case path
    /// A numeric IP address.
    case ipAddress
    /// 0–65535.
    case port
    /// `true` / `false`.
    case bool
    /// A non-negative integer.
    case count
    /// Seconds or `"30s"`, `"15m"`, `"24h"`.
    case duration
    /// Bytes or `"1GB"`, `"512MiB"`.
    case size
    /// Bits per second or `"10Mbps"`.
    case bitRate
    /// `"10/min"`, `"2/s"`; a bare integer is per `defaultWindow`.
    case eventRate(defaultWindow: Duration)
    /// `host:port`.
    case listenAddress
    /// A list of strings (TOML array; comma-separated in flags and environment).
    case stringList
    /// One of a fixed set of words.
    case choice([String])
}

/// One configuration key: its name, kind, default, and whether SIGHUP may change it.
public struct ConfigKeySpec: Sendable, Hashable {
    /// Dotted name as in the TOML file: `limits.max_allocations`.
    public let name: String
    /// How the value is written.
    public let kind: ConfigValueKind
    /// Default in the key's own syntax; `nil` = unset.
    public let defaultValue: String?
    /// Whether a SIGHUP reload applies a new value without a restart.
    public let reloadable: Bool
    /// Never printed or logged.
    public let isSecret: Bool
    /// One line for `--help` and the example file.
    public let help: String
    /// `false` for a key of the contract that this build does not implement yet: setting it
    /// (to anything but `false` for a switch) is refused by name, never silently ignored.
    public let isImplemented: Bool

    init(_ name: String, _ kind: ConfigValueKind, _ defaultValue: String?, reloadable: Bool = false,
         secret: Bool = false, implemented: Bool = true, _ help: String) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.reloadable = reloadable
        self.isSecret = secret
        self.isImplemented = implemented
        self.help = help
    }

    /// `ZRC_RELAY_` + the name upper-cased with `.` → `_`.
    public var environmentName: String {
        "ZRC_RELAY_" + name.uppercased().replacingAll(".", with: "_")
    }

    /// `--` + the name with `_` → `-`: `--limits.max-allocations`.
    public var flagName: String {
        "--" + name.replacingAll("_", with: "-")
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
