import RelayCore

/// One allocation in the admin API's JSON (DESIGN §7 v3).
public struct AdminAllocation: Encodable, Sendable, Equatable {
    /// One peer of the allocation.
    public struct Side: Encodable, Sendable, Equatable {
        public var peerID: String
        public var transport: String?
        public var observedAddress: String?
        public var connectedSince: UInt64?

        public init(peerID: String, transport: String?, observedAddress: String?, connectedSince: UInt64?) {
            self.peerID = peerID
            self.transport = transport
            self.observedAddress = observedAddress
            self.connectedSince = connectedSince
        }

        enum CodingKeys: String, CodingKey {
            case peerID = "peer_id", transport, observedAddress = "observed_addr", connectedSince = "connected_since"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(peerID, forKey: .peerID)
            try c.encode(transport, forKey: .transport)
            try c.encode(observedAddress, forKey: .observedAddress)
            try c.encode(connectedSince, forKey: .connectedSince)
        }
    }

    public var id: String
    public var state: String
    public var tier: String
    public var signerKey: String
    public var createdAt: UInt64
    public var expiresAt: UInt64
    public var bandwidthBitsPerSecond: UInt64
    public var quotaBytes: UInt64
    public var bytesAToB: UInt64
    public var bytesBToA: UInt64
    public var lastActivity: UInt64
    public var owner: String
    public var sides: [Side]

    public init(id: String, state: String, tier: String, signerKey: String, createdAt: UInt64, expiresAt: UInt64,
                bandwidthBitsPerSecond: UInt64, quotaBytes: UInt64, bytesAToB: UInt64, bytesBToA: UInt64,
                lastActivity: UInt64, owner: String, sides: [Side]) {
        self.id = id
        self.state = state
        self.tier = tier
        self.signerKey = signerKey
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.bandwidthBitsPerSecond = bandwidthBitsPerSecond
        self.quotaBytes = quotaBytes
        self.bytesAToB = bytesAToB
        self.bytesBToA = bytesBToA
        self.lastActivity = lastActivity
        self.owner = owner
        self.sides = sides
    }

    enum CodingKeys: String, CodingKey {
        case id, state, tier, signerKey = "signer_key", createdAt = "created_at", expiresAt = "expires_at"
        case bandwidthBitsPerSecond = "bandwidth_bps", quotaBytes = "quota_bytes", bytesAToB = "bytes_a_to_b"
        case bytesBToA = "bytes_b_to_a", lastActivity = "last_activity", owner, sides
    }
}

/// One revocation in the admin API's JSON.
public struct AdminRevocation: Encodable, Sendable, Equatable {
    public var allocationID: String?
    public var signerKey: String?
    public var until: UInt64

    public init(_ entry: RevocationList.Entry) {
        switch entry.target {
        case .allocation(let id): allocationID = id.description
        case .signer(let key): signerKey = key.base64url
        }
        until = entry.until
    }

    enum CodingKeys: String, CodingKey { case allocationID = "allocation_id", signerKey = "signer_key", until }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let allocationID { try c.encode(allocationID, forKey: .allocationID) }
        if let signerKey { try c.encode(signerKey, forKey: .signerKey) }
        try c.encode(until, forKey: .until)
    }
}

/// One block-list entry in the admin API's JSON: from the configuration or from the API.
public struct AdminBlockEntry: Encodable, Sendable, Equatable {
    public var cidr: String
    /// `config` (security.blocklist / blocklist_file; changed by SIGHUP) or `api`.
    public var source: String
    public var reason: String?
    /// Unix seconds when an API entry with a TTL lapses.
    public var expiresAt: UInt64?

    public init(cidr: String, source: String, reason: String?, expiresAt: UInt64?) {
        self.cidr = cidr
        self.source = source
        self.reason = reason
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey { case cidr, source, reason, expiresAt = "expires_at" }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(cidr, forKey: .cidr)
        try c.encode(source, forKey: .source)
        try c.encode(reason, forKey: .reason)
        try c.encode(expiresAt, forKey: .expiresAt)
    }
}

/// `GET /admin/stats`.
public struct AdminStats: Encodable, Sendable {
    public struct Instance: Encodable, Sendable {
        public var id: String
        public var region: String
        public var version: String
        public var uptimeSeconds: UInt64
        public var draining: Bool
        enum CodingKeys: String, CodingKey { case id, region, version, uptimeSeconds = "uptime_s", draining }
        public init(id: String, region: String, version: String, uptimeSeconds: UInt64, draining: Bool) {
            self.id = id
            self.region = region
            self.version = version
            self.uptimeSeconds = uptimeSeconds
            self.draining = draining
        }
    }

    public var instance: Instance
    /// waiting, paired, peer_gone.
    public var allocations: [String: Int]
    public var connections: [String: Int]
    public var bytesForwarded: [String: UInt64]
    public var packetsForwarded: [String: UInt64]
    public var packetsDropped: [String: UInt64]
    public var allocationsEnded: [String: UInt64]
    public var rateLimitHits: [String: UInt64]
    public var tokenVerifications: [String: UInt64]

    public init(instance: Instance, allocations: [String: Int], connections: [String: Int], bytesForwarded: [String: UInt64],
                packetsForwarded: [String: UInt64], packetsDropped: [String: UInt64], allocationsEnded: [String: UInt64],
                rateLimitHits: [String: UInt64], tokenVerifications: [String: UInt64], fleet: Fleet? = nil) {
        self.fleet = fleet
        self.instance = instance
        self.allocations = allocations
        self.connections = connections
        self.bytesForwarded = bytesForwarded
        self.packetsForwarded = packetsForwarded
        self.packetsDropped = packetsDropped
        self.allocationsEnded = allocationsEnded
        self.rateLimitHits = rateLimitHits
        self.tokenVerifications = tokenVerifications
    }

    /// The fleet (with Redis): every live instance and the count per region.
    public struct Fleet: Encodable, Sendable {
        public struct Member: Encodable, Sendable {
            public var id: String
            public var region: String
            public var publicAddress: String
            public var allocations: Int
            public var draining: Bool
            /// Unix seconds.
            public var lastHeartbeat: UInt64

            public init(id: String, region: String, publicAddress: String, allocations: Int, draining: Bool, lastHeartbeat: UInt64) {
                self.id = id
                self.region = region
                self.publicAddress = publicAddress
                self.allocations = allocations
                self.draining = draining
                self.lastHeartbeat = lastHeartbeat
            }

            enum CodingKeys: String, CodingKey {
                case id, region, publicAddress = "public_addr", allocations, draining, lastHeartbeat = "last_heartbeat"
            }
        }

        public var instances: [Member]
        public var regions: [String: Int]

        public init(instances: [Member]) {
            self.instances = instances
            self.regions = Dictionary(instances.map { ($0.region, 1) }, uniquingKeysWith: +)
        }
    }

    public var fleet: Fleet?

    enum CodingKeys: String, CodingKey {
        case fleet
        case instance, allocations, connections, bytesForwarded = "bytes_forwarded", packetsForwarded = "packets_forwarded"
        case packetsDropped = "packets_dropped", allocationsEnded = "allocations_ended", rateLimitHits = "rate_limit_hits"
        case tokenVerifications = "token_verifications"
    }
}

/// A refusal of the admin API: HTTP status, machine code and text (`{"error","code"}`).
public struct AdminError: Error, Sendable, Equatable {
    public var status: Int
    public var code: String
    public var message: String

    public init(_ status: Int, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }
}

/// What the admin API needs from the relay; `RelayApp` provides it, so this module does not
/// depend on the relay server.
public protocol AdminBackend: Sendable {
    /// The Bearer token in force (it may change on SIGHUP with `admin.token_file`).
    func currentToken() -> String?
    /// Charges a wrong or missing token to the caller's per-IP connection rate; `true` when
    /// the caller is over it.
    func chargeFailedAuthentication(address: [UInt8]) async -> Bool
    /// Whether the caller is already over its per-IP connection rate.
    func isOverRate(address: [UInt8]) async -> Bool

    func allocations() async -> [AdminAllocation]
    func allocation(_ id: AllocationID) async -> AdminAllocation?
    /// Ends an allocation with `admin_terminated`; `false` when unknown.
    func terminate(_ id: AllocationID) async -> Bool
    func stats() async -> AdminStats
    /// Revokes (until `until`, or the default of DESIGN §7) and ends what is live.
    func revoke(_ target: RevocationList.Target, until: UInt64?) async throws(AdminError) -> AdminRevocation
    func revocations() async -> [AdminRevocation]
    func unrevoke(_ target: RevocationList.Target) async throws(AdminError) -> Bool
    func blocklist() async -> [AdminBlockEntry]
    func block(cidr: String, ttlSeconds: UInt64?, reason: String?) async throws(AdminError) -> AdminBlockEntry
    func unblock(cidr: String) async -> Bool
    /// Every key with its effective value, secrets redacted.
    func effectiveConfiguration() -> [String: String?]
    /// Sets the log level; `false` for an unknown level name.
    func setLogLevel(_ name: String) -> Bool
    /// One admin call finished (the audit line is logged by the responder; this publishes the
    /// `admin` event).
    func adminCallCompleted(method: String, path: String, status: Int, caller: String)
    /// A new subscription to the event stream (JSON objects, one per element), bounded; it
    /// ends when the subscriber is too slow or the relay stops.
    func subscribeEvents() -> AsyncStream<String>
}
