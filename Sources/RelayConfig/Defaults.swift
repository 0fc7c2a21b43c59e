/// Every configuration key of DESIGN §2 with its default, in one place. The reason for each
/// default is on its line.
public enum Defaults {
    public static let keys: [ConfigKeySpec] = [
        // Where the relay listens. One port number for QUIC (UDP) and the TCP fallback, so one firewall rule covers both.
        .init("server.listen_addr", .ipAddress, "0.0.0.0", "address to bind (UDP and TCP)"),
        .init("server.listen_port", .port, "4433", "QUIC on UDP and the TCP fallback on TCP"),
        // Unset: advertise the address the client reached, which is right behind a plain NAT or none.
        .init("server.public_addr", .string, nil, "host advertised as relay_addr (default: the address the client reached)"),
        // Unset: a random id per start, so two instances never collide.
        .init("server.instance_id", .string, nil, "instance id (default: random at start)"),
        .init("server.region", .string, "local", "region label on every metric"),
        // Relative to the working directory, so `make run` works from a checkout.
        .init("server.quic_cert_path", .path, "certs/relay.crt", "PEM certificate chain (QUIC and TLS fallback)"),
        .init("server.quic_key_path", .path, "certs/relay.key", "PEM private key"),
        // 30 s: a silently vanished peer is noticed within this; keepalive (15 s) keeps live ones open.
        .init("quic.max_idle_timeout", .duration, "30s", "QUIC idle timeout"),
        // auto: no extra round trip normally, address validation under a connection flood.
        .init("quic.retry", .choice(["auto", "always", "never"]), "auto", "QUIC address validation with Retry"),
        .init("limits.max_allocations", .count, "1000", reloadable: true, "live allocations on this instance"),
        .init("limits.max_allocations_per_key", .count, "100", reloadable: true, "live allocations per signer key"),
        // 10 Mbit/s comfortably carries a remote-control video stream.
        .init("limits.default_bandwidth_limit", .bitRate, "10Mbps", reloadable: true, "per allocation per direction (free tier); 0 = no cap"),
        .init("limits.default_quota", .size, "1GB", reloadable: true, "forwarded bytes per allocation, both directions (free tier); 0 = no cap"),
        .init("limits.global_bandwidth_limit", .bitRate, "0", reloadable: true, "all allocations together; 0 = unlimited"),
        .init("limits.allocation_timeout", .duration, "24h", reloadable: true, "maximum allocation lifetime"),
        .init("limits.pairing_timeout", .duration, "60s", reloadable: true, "time for the second peer to arrive"),
        .init("limits.idle_timeout", .duration, "30s", reloadable: true, "time for a side that left to come back"),
        // 15 s: below the 30 s UDP NAT binding timeouts common in home routers.
        .init("limits.keepalive_interval", .duration, "15s", "PING interval that holds NAT bindings"),
        // Unset tier values follow the limits.default_* values (free = 1×, paid = 4×, unlimited = no cap).
        .init("tiers.free.bandwidth_limit", .bitRate, nil, reloadable: true, "free tier rate (default: limits.default_bandwidth_limit)"),
        .init("tiers.free.quota", .size, nil, reloadable: true, "free tier quota (default: limits.default_quota)"),
        .init("tiers.paid.bandwidth_limit", .bitRate, nil, reloadable: true, "paid tier rate (default: 4 × the free rate)"),
        .init("tiers.paid.quota", .size, nil, reloadable: true, "paid tier quota (default: 4 × the free quota)"),
        .init("tiers.unlimited.bandwidth_limit", .bitRate, "0", reloadable: true, "unlimited tier rate (0 = no cap)"),
        .init("tiers.unlimited.quota", .size, "0", reloadable: true, "unlimited tier quota (0 = no cap)"),
        .init("auth.trusted_keys", .stringList, "", reloadable: true, "Ed25519 public keys (base64url) whose tokens are accepted"),
        .init("auth.trusted_keys_file", .path, nil, reloadable: true, "file of trusted keys, one per line, # comments"),
        .init("auth.audience", .string, nil, "fleet name tokens must carry (unset: any)"),
        // 30 s of skew tolerates unsynchronised device clocks without making tokens long-lived.
        .init("auth.clock_skew", .duration, "30s", "tolerated clock skew for issued_at"),
        .init("auth.max_token_lifetime", .duration, "24h", "longest expires_at − issued_at accepted"),
        .init("security.allocation_rate_per_ip", .eventRate(defaultWindow: .seconds(60)), "10", reloadable: true, "ALLOCATEs per source IP (IPv6: per /64); 0 = no limit"),
        .init("security.connection_rate_per_ip", .eventRate(defaultWindow: .seconds(60)), "30", reloadable: true, "new connections per source IP (IPv6: per /64); 0 = no limit"),
        // 500/s: well above normal reconnect storms of one instance, low enough to blunt a flood.
        .init("security.accept_rate", .eventRate(defaultWindow: .seconds(1)), "500", "new connections per second, all sources, in every quic.retry mode; 0 = no limit"),
        .init("security.allowlist", .stringList, "", reloadable: true, "CIDRs allowed (empty: all)"),
        .init("security.blocklist", .stringList, "", reloadable: true, "CIDRs refused"),
        .init("security.blocklist_file", .path, nil, reloadable: true, "file of CIDRs refused, one per line"),
        .init("fallback.enabled", .bool, "true", "TCP fallback (yamux) on TCP listen_port"),
        .init("fallback.tls", .bool, "true", "TLS 1.3 on the fallback (false: plain TCP)"),
        // DESIGN §9 v3 (WebSocket) is not built yet: off here, and setting it is refused.
        .init("fallback.websocket", .bool, "true", "WebSocket (HTTP/1.1 upgrade) on the fallback listener"),
        .init("fallback.websocket_path", .string, "/zrc-relay/v1", "WebSocket upgrade path"),
        .init("fallback.extra_listen", .listenAddress, nil, "one more TCP listener with the same TLS + WebSocket service (e.g. 0.0.0.0:443)"),
        .init("metrics.listen", .listenAddress, "0.0.0.0:9464", "/health, /ready, /metrics"),
        // Off, and on loopback when on: the admin API can end allocations.
        // Redis (DESIGN §8) is not built yet: setting its keys is refused.
        .init("admin.enabled", .bool, "false", "admin API (DESIGN §7); needs admin.token or admin.token_file"),
        .init("admin.listen", .listenAddress, "127.0.0.1:9465", "admin API address (Bearer token); \"\" = no TCP listener"),
        .init("admin.unix_socket", .path, nil, "admin API Unix socket, mode 0600, callers of the relay's uid or root, no token"),
        .init("admin.token", .string, nil, reloadable: true, secret: true, "Bearer token for the admin API (at least 32 characters)"),
        .init("admin.token_file", .path, nil, reloadable: true, "file holding the admin token (read again on SIGHUP)"),
        .init("auth.revocations_file", .path, nil, "revocations kept across restarts (JSON, rewritten atomically)"),
        .init("redis.url", .string, nil, secret: true, "Redis for shared state (redis://[user:pass@]host:port/db or rediss://); unset: in memory, one instance"),
        .init("redis.key_prefix", .string, "zrc:", "prefix of every Redis key and channel"),
        .init("redis.heartbeat_interval", .duration, "1s", "instance heartbeat; an instance is dead 3 intervals after its last"),
        .init("redis.usage_flush_interval", .duration, "1s", "how often usage is written to Redis (and at every ending)"),
        .init("logging.level", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]), "info",
              reloadable: true, "log level"),
        .init("logging.format", .choice(["json", "text"]), "json", "log line format"),
    ]

    /// Lookup by dotted name.
    public static let byName: [String: ConfigKeySpec] = Dictionary(uniqueKeysWithValues: keys.map { ($0.name, $0) })
}
