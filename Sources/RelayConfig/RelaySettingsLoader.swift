import Configuration
import Foundation

/// Builds `RelaySettings` from the layers of DESIGN §2 — flag > environment > file > default —
/// through swift-configuration's `ConfigReader`, and checks every value against its key.
public struct RelaySettingsLoader: Sendable {
    /// Where a value came from, for `config check`.
    public enum Source: String, Sendable { case flag, environment, file, `default` }

    /// The flat layers, highest precedence first.
    public let flags: [String: RawConfigValue]
    public let environment: [String: RawConfigValue]
    public let file: [String: RawConfigValue]
    /// `ZRC_RELAY_*` variables that are not settings and were ignored (orchestrator-made, or
    /// outside every section): names only, for one start-up warning.
    public let ignoredEnvironmentNames: [String]
    private let reader: ConfigReader

    /// Reads the layers. `fileText` is the TOML text of `--config FILE`, if any. `pinned`
    /// values win over every layer, and a pinned `nil` makes the key unset in every layer (a
    /// reload keeps restart-only keys at their running values).
    public init(fileText: String?, fileName: String = "config", environment: [String: String], flags: [String],
                pinned: [String: RawConfigValue?] = [:]) throws(ConfigError) {
        var flagValues = try ConfigSources.flags(flags)
        var (environmentValues, ignored) = try ConfigSources.environment(environment)
        var fileValues = try fileText.map { text throws(ConfigError) in try ConfigSources.toml(text, file: fileName) } ?? [:]
        for (key, value) in pinned {
            flagValues[key] = value
            if value == nil {
                environmentValues[key] = nil
                fileValues[key] = nil
            }
        }
        self.flags = flagValues
        (self.environment, self.ignoredEnvironmentNames) = (environmentValues, ignored)
        self.file = fileValues
        let defaults = Self.defaultValues
        try Self.refuseUnimplemented(flags: self.flags, environment: self.environment, file: self.file)
        reader = ConfigReader(providers: [
            Self.provider("flags", self.flags),
            Self.provider("environment", self.environment),
            Self.provider("file", self.file),
            Self.provider("defaults", defaults),
        ])
    }

    private static func provider(_ name: String, _ values: [String: RawConfigValue]) -> InMemoryProvider {
        var converted: [AbsoluteConfigKey: ConfigValue] = [:]
        for (key, value) in values {
            let secret = Defaults.byName[key]?.isSecret ?? false
            let content: ConfigContent
            switch value {
            case .scalar(let s): content = .string(s)
            case .list(let items): content = .stringArray(items)
            }
            converted[AbsoluteConfigKey(ConfigKey(key))] = ConfigValue(content, isSecret: secret)
        }
        return InMemoryProvider(name: name, values: converted)
    }

    /// A key this build does not implement, set to anything but off, stops start-up by name.
    static func refuseUnimplemented(
        flags: [String: RawConfigValue], environment: [String: RawConfigValue], file: [String: RawConfigValue]
    ) throws(ConfigError) {
        for spec in Defaults.keys where !spec.isImplemented {
            guard let value = flags[spec.name] ?? environment[spec.name] ?? file[spec.name] else { continue }
            if spec.kind == .bool, case .scalar(let text) = value, text.trimmingCharacters(in: .whitespaces).lowercased() == "false" {
                continue
            }
            throw ConfigError(key: spec.name, problem: "is not implemented in this build (see docs/OPERATIONS.md); remove it")
        }
    }

    /// Every key's default as a raw value.
    static let defaultValues: [String: RawConfigValue] = {
        var defaults: [String: RawConfigValue] = [:]
        for spec in Defaults.keys {
            if let value = spec.defaultValue {
                defaults[spec.name] = spec.kind == .stringList
                    ? .list(value.split(separator: ",").map(String.init)) : .scalar(value)
            }
        }
        return defaults
    }()

    /// The raw value in force for `key` (from the highest layer that has it), `nil` if unset.
    public func rawValue(of key: String) -> RawConfigValue? {
        flags[key] ?? environment[key] ?? file[key] ?? Self.defaultValues[key]
    }

    /// Keys that need a restart (derived from the key table: not `reloadable`) whose value
    /// differs between `self` and `newer`.
    public func restartOnlyChanges(to newer: RelaySettingsLoader) -> [String] {
        Defaults.keys.filter { !$0.reloadable && rawValue(of: $0.name) != newer.rawValue(of: $0.name) }.map(\.name)
    }

    /// Which layer supplied `key`.
    public func source(of key: String) -> Source {
        if flags[key] != nil { return .flag }
        if environment[key] != nil { return .environment }
        if file[key] != nil { return .file }
        return .default
    }

    // MARK: Typed reads

    func text(_ key: String) -> String? {
        let secret = Defaults.byName[key]?.isSecret ?? false
        return reader.string(forKey: ConfigKey(key), isSecret: secret)
    }

    func list(_ key: String) -> [String] {
        reader.stringArray(forKey: ConfigKey(key)) ?? []
    }

    func required(_ key: String) throws(ConfigError) -> String {
        guard let value = text(key) else { throw ConfigError(key: key, problem: "missing value") }
        return value
    }

    func duration(_ key: String) throws(ConfigError) -> Duration {
        let value = try required(key)
        guard let d = ConfigUnits.duration(value) else {
            throw ConfigError(key: key, problem: "\(ConfigError.quote(value)) is not a duration (seconds, or e.g. \"30s\", \"15m\", \"24h\")")
        }
        return d
    }

    func count(_ key: String) throws(ConfigError) -> Int {
        let value = try required(key)
        guard let n = Int(value.trimmed), n >= 0 else { throw ConfigError(key: key, problem: "\(ConfigError.quote(value)) is not a non-negative integer") }
        return n
    }

    func size(_ key: String) throws(ConfigError) -> UInt64? {
        guard let value = text(key) else { return nil }
        guard let n = ConfigUnits.size(value) else {
            throw ConfigError(key: key, problem: "\(ConfigError.quote(value)) is not a size (bytes, or e.g. \"1GB\", \"512MiB\")")
        }
        return n
    }

    func bitRate(_ key: String) throws(ConfigError) -> UInt64? {
        guard let value = text(key) else { return nil }
        guard let n = ConfigUnits.bitRate(value) else {
            throw ConfigError(key: key, problem: "\(ConfigError.quote(value)) is not a bit rate (bit/s, or e.g. \"10Mbps\")")
        }
        return n
    }

    func eventRate(_ key: String) throws(ConfigError) -> EventRate {
        let value = try required(key)
        guard case .eventRate(let window)? = Defaults.byName[key]?.kind,
              let rate = ConfigUnits.eventRate(value, defaultWindow: window) else {
            throw ConfigError(key: key, problem: "\(ConfigError.quote(value)) is not a rate (e.g. 10, \"10/min\", \"2/s\")")
        }
        return rate
    }

    func bool(_ key: String) throws(ConfigError) -> Bool {
        let value = try required(key)
        switch value.trimmed.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw ConfigError(key: key, problem: "\(ConfigError.quote(value)) is not true or false")
        }
    }

    func choice(_ key: String) throws(ConfigError) -> String {
        let value = try required(key)
        guard case .choice(let options)? = Defaults.byName[key]?.kind, options.contains(value) else {
            let options: [String]
            if case .choice(let o)? = Defaults.byName[key]?.kind { options = o } else { options = [] }
            throw ConfigError(key: key, problem: "\(ConfigError.quote(value)) is not one of \(options.joined(separator: ", "))")
        }
        return value
    }

    /// A request path for the WebSocket upgrade: `/` then visible ASCII, no query, at most 256 bytes.
    func websocketPath(_ key: String) throws(ConfigError) -> String {
        let value = text(key) ?? ""
        let visible = value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
        guard value.hasPrefix("/"), value.utf8.count <= 256, visible else {
            throw ConfigError(key: key, problem: "\(ConfigError.quote(value)) is not a request path (\"/\" then visible ASCII, no query, at most 256 bytes)")
        }
        return value
    }

    func hostPort(_ key: String) throws(ConfigError) -> HostPort {
        let value = try required(key)
        guard let hp = HostPort(parsing: value) else { throw ConfigError(key: key, problem: "\(ConfigError.quote(value)) is not host:port") }
        return hp
    }

    func port(_ key: String) throws(ConfigError) -> UInt16 {
        let value = try required(key)
        guard let p = UInt16(value.trimmed) else { throw ConfigError(key: key, problem: "\(ConfigError.quote(value)) is not a port (0–65535)") }
        return p
    }

    func ipAddress(_ key: String) throws(ConfigError) -> String {
        let value = try required(key).trimmed
        guard IPAddressText.isValid(value) else { throw ConfigError(key: key, problem: "\(ConfigError.quote(value)) is not an IP address") }
        return value
    }

    // MARK: The settings

    /// Reads and checks every key; the first problem is thrown.
    public func settings() throws(ConfigError) -> RelaySettings {
        let limits = RelaySettings.Limits(
            maxAllocations: try count("limits.max_allocations"),
            maxAllocationsPerKey: try count("limits.max_allocations_per_key"),
            defaultBandwidthBitsPerSecond: try bitRate("limits.default_bandwidth_limit") ?? 0,
            defaultQuotaBytes: try size("limits.default_quota") ?? 0,
            globalBandwidthBitsPerSecond: try bitRate("limits.global_bandwidth_limit") ?? 0,
            allocationTimeout: try duration("limits.allocation_timeout"),
            pairingTimeout: try duration("limits.pairing_timeout"),
            idleTimeout: try duration("limits.idle_timeout"),
            keepaliveInterval: try duration("limits.keepalive_interval"))
        let free = RelaySettings.TierLimits(
            bandwidthBitsPerSecond: try bitRate("tiers.free.bandwidth_limit") ?? limits.defaultBandwidthBitsPerSecond,
            quotaBytes: try size("tiers.free.quota") ?? limits.defaultQuotaBytes)
        // Paid = 4 × the effective free tier (DESIGN §2 v3), so a `tiers.free` override moves it too.
        let (paidRate, o1) = free.bandwidthBitsPerSecond.multipliedReportingOverflow(by: 4)
        let (paidQuota, o2) = free.quotaBytes.multipliedReportingOverflow(by: 4)
        let paid = RelaySettings.TierLimits(
            bandwidthBitsPerSecond: try bitRate("tiers.paid.bandwidth_limit") ?? (o1 ? .max : paidRate),
            quotaBytes: try size("tiers.paid.quota") ?? (o2 ? .max : paidQuota))
        let unlimited = RelaySettings.TierLimits(
            bandwidthBitsPerSecond: try bitRate("tiers.unlimited.bandwidth_limit") ?? 0,
            quotaBytes: try size("tiers.unlimited.quota") ?? 0)
        let settings = RelaySettings(
            server: .init(
                listenAddress: try ipAddress("server.listen_addr"),
                listenPort: try port("server.listen_port"),
                publicAddress: text("server.public_addr"),
                instanceID: text("server.instance_id"),
                region: try required("server.region"),
                certificatePath: try required("server.quic_cert_path"),
                keyPath: try required("server.quic_key_path")),
            quic: .init(
                maxIdleTimeout: try duration("quic.max_idle_timeout"),
                retry: RelaySettings.RetryMode(rawValue: try choice("quic.retry")) ?? .auto),
            limits: limits,
            freeTier: free, paidTier: paid, unlimitedTier: unlimited,
            auth: .init(
                trustedKeys: list("auth.trusted_keys"),
                trustedKeysFile: text("auth.trusted_keys_file"),
                audience: text("auth.audience"),
                clockSkew: try duration("auth.clock_skew"),
                maxTokenLifetime: try duration("auth.max_token_lifetime"),
                revocationsFile: text("auth.revocations_file")),
            security: .init(
                allocationRatePerIP: try eventRate("security.allocation_rate_per_ip"),
                connectionRatePerIP: try eventRate("security.connection_rate_per_ip"),
                acceptRate: try eventRate("security.accept_rate"),
                allowlist: list("security.allowlist"),
                blocklist: list("security.blocklist"),
                blocklistFile: text("security.blocklist_file")),
            fallback: .init(
                enabled: try bool("fallback.enabled"), tls: try bool("fallback.tls"),
                websocket: try bool("fallback.websocket"), websocketPath: try websocketPath("fallback.websocket_path"),
                extraListen: (text("fallback.extra_listen") ?? "").trimmed.isEmpty ? nil : try hostPort("fallback.extra_listen")),
            metricsListen: try hostPort("metrics.listen"),
            admin: .init(
                enabled: try bool("admin.enabled"),
                listen: (text("admin.listen") ?? "").trimmed.isEmpty ? nil : try hostPort("admin.listen"),
                unixSocket: text("admin.unix_socket"),
                token: text("admin.token"),
                tokenFile: text("admin.token_file")),
            redis: .init(
                url: text("redis.url"),
                keyPrefix: text("redis.key_prefix") ?? "zrc:",
                heartbeatInterval: try duration("redis.heartbeat_interval"),
                usageFlushInterval: try duration("redis.usage_flush_interval")),
            logging: .init(level: try choice("logging.level"), format: try choice("logging.format")))
        try Self.checkConsistency(settings)
        return settings
    }

    /// Settings that are individually valid but do not make sense together.
    static func checkConsistency(_ s: RelaySettings) throws(ConfigError) {
        if s.limits.maxAllocations == 0 {
            throw ConfigError(key: "limits.max_allocations", problem: "must be at least 1")
        }
        if s.limits.pairingTimeout == .zero {
            throw ConfigError(key: "limits.pairing_timeout", problem: "must be greater than 0")
        }
        if s.limits.keepaliveInterval == .zero {
            throw ConfigError(key: "limits.keepalive_interval", problem: "must be greater than 0")
        }
        if s.quic.maxIdleTimeout == .zero {
            throw ConfigError(key: "quic.max_idle_timeout",
                              problem: "0 (no idle timeout) contradicts limits.keepalive_interval: a vanished peer would never be noticed; use a value above the keepalive interval")
        }
        if s.limits.keepaliveInterval >= s.quic.maxIdleTimeout {
            throw ConfigError(key: "limits.keepalive_interval",
                              problem: "must be shorter than quic.max_idle_timeout (\(s.quic.maxIdleTimeout)), or idle connections close")
        }
        if s.admin.enabled, s.admin.listen == nil, s.admin.unixSocket == nil {
            throw ConfigError(key: "admin.listen", problem: "admin.enabled = true needs admin.listen or admin.unix_socket")
        }
        if s.admin.enabled, s.admin.listen != nil, (s.admin.token ?? "").isEmpty, s.admin.tokenFile == nil {
            throw ConfigError(key: "admin.token", problem: "admin.enabled = true needs admin.token or admin.token_file")
        }
        if s.redis.heartbeatInterval < .milliseconds(100) {
            throw ConfigError(key: "redis.heartbeat_interval", problem: "must be at least 100ms")
        }
        if s.redis.usageFlushInterval < .milliseconds(100) {
            throw ConfigError(key: "redis.usage_flush_interval", problem: "must be at least 100ms")
        }
        if s.auth.maxTokenLifetime == .zero {
            throw ConfigError(key: "auth.max_token_lifetime", problem: "must be greater than 0")
        }
    }

    /// Every key with its effective value (lists as `a, b`; unset as `nil`), secrets redacted,
    /// for `GET /admin/config`.
    public func effectiveValues() -> [String: String?] {
        Dictionary(uniqueKeysWithValues: Defaults.keys.map { spec -> (String, String?) in
            if spec.kind == .stringList { return (spec.name, list(spec.name).joined(separator: ", ")) }
            guard let text = text(spec.name) else { return (spec.name, nil) }
            return (spec.name, spec.isSecret ? "<redacted>" : text)
        })
    }

    /// Every key with its effective value and source, secrets redacted, for `config check`.
    public func effectiveLines() -> [String] {
        Defaults.keys.map { spec in
            let value: String
            if spec.kind == .stringList {
                value = "[" + list(spec.name).map { "\"\($0)\"" }.joined(separator: ", ") + "]"
            } else if let text = text(spec.name) {
                value = spec.isSecret ? "\"<redacted>\"" : "\"\(text)\""
            } else {
                value = "(unset)"
            }
            return "\(spec.name) = \(value)  # \(source(of: spec.name).rawValue)"
        }
    }
}

/// Numeric IPv4/IPv6 text check without sockets.
enum IPAddressText {
    static func isValid(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4 {
            return parts.allSatisfy { part in
                guard let n = Int(part), part.count <= 3, n <= 255, !part.isEmpty else { return false }
                return !(part.count > 1 && part.hasPrefix("0"))
            }
        }
        // IPv6: hex groups separated by ':', at most one '::'.
        guard text.contains(":"), text.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return false }
        let doubleColons = text.components(separatedBy: "::").count - 1
        guard doubleColons <= 1 else { return false }
        let groups = text.split(separator: ":", omittingEmptySubsequences: true)
        return groups.count <= 8 && groups.allSatisfy { $0.count <= 4 || $0.contains(".") }
    }
}

