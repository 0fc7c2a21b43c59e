import RelayCore

/// One allocation as the fleet shares it (DESIGN §8): who owns it, who may bind, its caps, and
/// its usage as last flushed by the owner. Pure value; `fields`/`init(fields:)` are its Redis
/// hash form (every value a decimal or text string).
public struct SharedAllocation: Sendable, Hashable {
    public var id: AllocationID
    /// Instance id of the owner when it was last written.
    public var owner: String
    public var signer: SignerKey
    public var peerA: PeerID
    public var peerB: PeerID
    public var tier: Tier
    public var bandwidthBitsPerSecond: UInt64
    public var quotaBytes: UInt64
    /// Payload bytes forwarded (both ways), as last flushed.
    public var usedBytes: UInt64
    public var bytesAToB: UInt64
    public var bytesBToA: UInt64
    /// Unix seconds.
    public var createdAt: UInt64
    public var expiresAt: UInt64
    public var tokenExpiresAt: UInt64
    /// created + allocation_timeout: no REFRESH extends past it.
    public var latestEnd: UInt64
    public var state: PeerState
    /// Unix seconds of the last datagram or binding the owner saw.
    public var lastActivity: UInt64

    public init(id: AllocationID, owner: String, signer: SignerKey, peerA: PeerID, peerB: PeerID, tier: Tier,
                bandwidthBitsPerSecond: UInt64, quotaBytes: UInt64, usedBytes: UInt64 = 0, bytesAToB: UInt64 = 0,
                bytesBToA: UInt64 = 0, createdAt: UInt64, expiresAt: UInt64, tokenExpiresAt: UInt64, latestEnd: UInt64,
                state: PeerState = .waiting, lastActivity: UInt64 = 0) {
        self.id = id
        self.owner = owner
        self.signer = signer
        self.peerA = peerA
        self.peerB = peerB
        self.tier = tier
        self.bandwidthBitsPerSecond = bandwidthBitsPerSecond
        self.quotaBytes = quotaBytes
        self.usedBytes = usedBytes
        self.bytesAToB = bytesAToB
        self.bytesBToA = bytesBToA
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.tokenExpiresAt = tokenExpiresAt
        self.latestEnd = latestEnd
        self.state = state
        self.lastActivity = lastActivity
    }

    /// The hash fields, in a fixed order (field, value, field, value…).
    public var fields: [(String, String)] {
        [("id", id.description), ("owner", owner), ("signer", signer.base64url), ("peer_a", peerA.description),
         ("peer_b", peerB.description), ("tier", "\(tier.rawValue)"), ("bandwidth", "\(bandwidthBitsPerSecond)"),
         ("quota", "\(quotaBytes)"), ("used", "\(usedBytes)"), ("a_to_b", "\(bytesAToB)"), ("b_to_a", "\(bytesBToA)"),
         ("created", "\(createdAt)"), ("expires", "\(expiresAt)"), ("token_expires", "\(tokenExpiresAt)"),
         ("latest_end", "\(latestEnd)"), ("state", "\(state.rawValue)"), ("last_activity", "\(lastActivity)")]
    }

    /// Reads the hash form; `nil` when a field is missing or malformed (a record written by
    /// something else is ignored, never trusted halfway).
    public init?(fields: [String: String]) {
        func number(_ key: String) -> UInt64? { fields[key].flatMap { UInt64($0) } }
        guard let id = fields["id"].flatMap(AllocationID.init(hex:)), let owner = fields["owner"],
              let signer = fields["signer"].flatMap(SignerKey.init(base64url:)),
              let peerA = fields["peer_a"].flatMap(PeerID.init(hex:)), let peerB = fields["peer_b"].flatMap(PeerID.init(hex:)),
              let tier = fields["tier"].flatMap({ UInt8($0) }).flatMap(Tier.init(rawValue:)),
              let bandwidth = number("bandwidth"), let quota = number("quota"), let used = number("used"),
              let created = number("created"), let expires = number("expires"), let tokenExpires = number("token_expires"),
              let latestEnd = number("latest_end")
        else { return nil }
        let state = fields["state"].flatMap { UInt8($0) }.flatMap(PeerState.init(rawValue:)) ?? .waiting
        self.init(id: id, owner: owner, signer: signer, peerA: peerA, peerB: peerB, tier: tier, bandwidthBitsPerSecond: bandwidth,
                  quotaBytes: quota, usedBytes: used, bytesAToB: number("a_to_b") ?? 0, bytesBToA: number("b_to_a") ?? 0,
                  createdAt: created, expiresAt: expires, tokenExpiresAt: tokenExpires, latestEnd: latestEnd,
                  state: state, lastActivity: number("last_activity") ?? 0)
    }

    /// Whether a token for `signer` naming `peers` belongs to this allocation.
    public func matches(signer: SignerKey, peerA: PeerID, peerB: PeerID) -> Bool {
        self.signer == signer && Set([self.peerA, self.peerB]) == Set([peerA, peerB])
    }
}

/// One relay instance as the fleet sees it (its heartbeat record).
public struct FleetInstance: Sendable, Hashable {
    public var id: String
    public var region: String
    /// `host:port` where clients reach it (GOAWAY `alt`).
    public var publicAddress: String
    /// Unix seconds.
    public var startedAt: UInt64
    public var draining: Bool
    public var allocations: Int
    /// Unix milliseconds of its last heartbeat.
    public var lastHeartbeat: UInt64

    public init(id: String, region: String, publicAddress: String, startedAt: UInt64, draining: Bool = false,
                allocations: Int = 0, lastHeartbeat: UInt64 = 0) {
        self.id = id
        self.region = region
        self.publicAddress = publicAddress
        self.startedAt = startedAt
        self.draining = draining
        self.allocations = allocations
        self.lastHeartbeat = lastHeartbeat
    }

    public var fields: [(String, String)] {
        [("id", id), ("region", region), ("public_addr", publicAddress), ("started", "\(startedAt)"),
         ("draining", draining ? "1" : "0"), ("allocations", "\(allocations)"), ("heartbeat", "\(lastHeartbeat)")]
    }

    public init?(fields: [String: String]) {
        guard let id = fields["id"], let region = fields["region"], let address = fields["public_addr"] else { return nil }
        self.init(id: id, region: region, publicAddress: address, startedAt: fields["started"].flatMap { UInt64($0) } ?? 0,
                  draining: fields["draining"] == "1", allocations: fields["allocations"].flatMap { Int($0) } ?? 0,
                  lastHeartbeat: fields["heartbeat"].flatMap { UInt64($0) } ?? 0)
    }

    /// The instance a draining one names as `alt`: live, not draining, not `excluding`, in
    /// `region`, with the fewest allocations (ties: the smallest id, so the choice is stable).
    public static func leastLoaded(_ instances: [FleetInstance], region: String, excluding: String) -> FleetInstance? {
        instances.filter { $0.id != excluding && !$0.draining && $0.region == region }
            .min { ($0.allocations, $0.id) < ($1.allocations, $1.id) }
    }
}

/// An API block-list entry as the fleet shares it.
public struct SharedBlockEntry: Sendable, Hashable {
    public var cidr: String
    public var reason: String?
    /// Unix seconds; `nil` = until removed.
    public var expiresAt: UInt64?

    public init(cidr: String, reason: String?, expiresAt: UInt64?) {
        self.cidr = cidr
        self.reason = reason
        self.expiresAt = expiresAt
    }

    /// Value form: `<expires or 0> <reason>`.
    public var value: String { "\(expiresAt ?? 0) \(reason ?? "")" }

    public init?(cidr: String, value: String) {
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, let expires = UInt64(first) else { return nil }
        let reason = parts.count > 1 ? String(parts[1]) : ""
        self.init(cidr: cidr, reason: reason.isEmpty ? nil : reason, expiresAt: expires == 0 ? nil : expires)
    }
}
