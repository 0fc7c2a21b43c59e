/// The relay's validated configuration (DESIGN §2), built by `RelaySettingsLoader`.
public struct RelaySettings: Sendable, Hashable {
    /// `server.*`
    public struct Server: Sendable, Hashable {
        public var listenAddress: String
        public var listenPort: UInt16
        public var publicAddress: String?
        public var instanceID: String?
        public var region: String
        public var certificatePath: String
        public var keyPath: String
    }

    /// `quic.retry`
    public enum RetryMode: String, Sendable, Hashable { case auto, always, never }

    /// `quic.*`
    public struct QUIC: Sendable, Hashable {
        public var maxIdleTimeout: Duration
        public var retry: RetryMode
    }

    /// `limits.*`
    public struct Limits: Sendable, Hashable {
        public var maxAllocations: Int
        public var maxAllocationsPerKey: Int
        public var defaultBandwidthBitsPerSecond: UInt64
        public var defaultQuotaBytes: UInt64
        public var globalBandwidthBitsPerSecond: UInt64
        public var allocationTimeout: Duration
        public var pairingTimeout: Duration
        public var idleTimeout: Duration
        public var keepaliveInterval: Duration
    }

    /// `tiers.<name>.*`, with unset values already resolved (0 = no cap).
    public struct TierLimits: Sendable, Hashable {
        public var bandwidthBitsPerSecond: UInt64
        public var quotaBytes: UInt64
    }

    /// `auth.*`
    public struct Auth: Sendable, Hashable {
        public var trustedKeys: [String]
        public var trustedKeysFile: String?
        public var audience: String?
        public var clockSkew: Duration
        public var maxTokenLifetime: Duration
        /// `auth.revocations_file`: where revocations survive a restart.
        public var revocationsFile: String?
    }

    /// `security.*`
    public struct Security: Sendable, Hashable {
        public var allocationRatePerIP: EventRate
        public var connectionRatePerIP: EventRate
        public var acceptRate: EventRate
        public var allowlist: [String]
        public var blocklist: [String]
        public var blocklistFile: String?
    }

    /// `fallback.*`
    public struct Fallback: Sendable, Hashable {
        public var enabled: Bool
        public var tls: Bool
        /// `fallback.websocket`: HTTP/1.1 with the WebSocket upgrade beside yamux.
        public var websocket: Bool = true
        /// `fallback.websocket_path`: the upgrade's request path (starts with `/`).
        public var websocketPath: String = "/zrc-relay/v1"
        /// `fallback.extra_listen`: one more TCP listener with the same service.
        public var extraListen: HostPort?
    }

    /// `admin.*`
    public struct Admin: Sendable, Hashable {
        public var enabled: Bool
        /// `nil` when `admin.listen = ""` (the Unix socket alone).
        public var listen: HostPort?
        public var unixSocket: String?
        public var token: String?
        public var tokenFile: String?
    }

    /// `logging.*`
    public struct Logging: Sendable, Hashable {
        public var level: String
        public var format: String
    }

    public var server: Server
    public var quic: QUIC
    public var limits: Limits
    public var freeTier: TierLimits
    public var paidTier: TierLimits
    public var unlimitedTier: TierLimits
    public var auth: Auth
    public var security: Security
    public var fallback: Fallback
    public var metricsListen: HostPort
    public var admin: Admin
    public var redis: Redis
    public var logging: Logging
}

extension RelaySettings {
    /// `redis.*`: shared state for several instances (DESIGN §8).
    public struct Redis: Sendable, Hashable {
        /// `nil`: embedded in-memory state, one instance.
        public var url: String?
        public var keyPrefix: String
        public var heartbeatInterval: Duration
        public var usageFlushInterval: Duration

        public init(url: String?, keyPrefix: String, heartbeatInterval: Duration, usageFlushInterval: Duration) {
            self.url = url
            self.keyPrefix = keyPrefix
            self.heartbeatInterval = heartbeatInterval
            self.usageFlushInterval = usageFlushInterval
        }
    }
}

/// `host:port` (IPv6 as `[host]:port`).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`.
    public init?(parsing text: String) {
        let t = text.trimmed
        guard let colon = t.lastIndex(of: ":"), let port = UInt16(t[t.index(after: colon)...]) else { return nil }
        var host = String(t[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        else if host.contains(":") { return nil }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
