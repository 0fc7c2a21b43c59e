import RelayCore

/// What the relay enforces, built from `RelaySettings` by the CLI (or directly by tests).
public struct RelayServerConfiguration: Sendable {
    /// Limits, tiers and timeouts of allocations.
    public var allocations: AllocationTable.Configuration
    /// Trusted keys, audience, skew, lifetime.
    public var tokens: TokenVerifier.Configuration
    /// The port advertised in ALLOCATED (`server.listen_port`).
    public var relayPort: UInt16
    /// `server.public_addr`; `nil` = the address the client reached.
    public var publicAddress: String?
    /// `security.allocation_rate_per_ip`.
    public var allocationRatePerIP: (limit: Int, window: Duration) = (10, .seconds(60))
    /// `security.connection_rate_per_ip`.
    public var connectionRatePerIP: (limit: Int, window: Duration) = (30, .seconds(60))
    /// `security.allowlist` (empty = everyone).
    public var allowlist = CIDRSet()
    /// `security.blocklist` (+ `blocklist_file`).
    public var blocklist = CIDRSet()
    /// Largest payload forwarded (DESIGN §4: 1500).
    public var maxDatagramPayload = 1500
    /// How often timeouts are checked.
    public var tickInterval: Duration = .milliseconds(100)
    /// A connection (QUIC or fallback) that has not allocated this long after it was
    /// established is told `bad_message` and closed: nobody holds a socket without a token.
    public var allocateTimeout: Duration = .seconds(10)
    /// GOAWAY shutdown spreads `reconnect_in_ms` uniformly over this.
    public var shutdownReconnectSpread: Duration = .seconds(5)

    public init(allocations: AllocationTable.Configuration, tokens: TokenVerifier.Configuration, relayPort: UInt16) {
        self.allocations = allocations
        self.tokens = tokens
        self.relayPort = relayPort
    }
}
