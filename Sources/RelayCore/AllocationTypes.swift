/// The I/O shell's handle for one client connection (QUIC or TCP); opaque to the core.
public struct ConnectionHandle: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "\(rawValue)" }
}

/// Why an allocation ended (the `outcome` label of `allocations_total`).
public enum AllocationOutcome: String, Sendable, Hashable, CaseIterable {
    case released, expired, quotaExceeded = "quota_exceeded", peerTimeout = "peer_timeout"
    case adminTerminated = "admin_terminated", revoked, draining
}

/// Why the core refused to forward a datagram (`packets_dropped_total{reason}`).
public enum DropReason: String, Sendable, Hashable, CaseIterable {
    case unpaired, bandwidth, globalBandwidth = "global_bandwidth", tooLarge = "too_large", queueFull = "queue_full", quota
}

/// The hot-path answer for one datagram.
public enum ForwardDecision: Sendable, Hashable {
    /// Send the payload unchanged on this connection.
    case forward(to: ConnectionHandle)
    /// Drop it, counted under this reason.
    case drop(DropReason)
}

/// Events for logs, metrics and billing.
public enum AllocationEvent: Sendable, Hashable {
    case created(AllocationID, tier: Tier, signer: SignerKey)
    case paired(AllocationID)
    /// Bytes each way: A→B (sent by peer_a's side) and B→A.
    case ended(AllocationID, outcome: AllocationOutcome, bytesAToB: UInt64, bytesBToA: UInt64, duration: Duration,
               quotaUsage: Double?, signer: SignerKey, tier: Tier)
    /// Datagrams were dropped by the bandwidth cap (at most once per second per allocation).
    case throttled(AllocationID, dropped: UInt64)
}

/// What the shell must do after a core call.
public enum AllocationAction: Sendable, Hashable {
    /// Write this frame on the connection's control stream.
    case send(ControlFrame, to: ConnectionHandle)
    /// Close the connection with this code (0 after GOAWAY replaced).
    case close(ConnectionHandle, code: RelayErrorCode)
    /// Log / count / publish.
    case event(AllocationEvent)
}

/// Limits of one tier after resolution (0 = no cap).
public struct TierLimits: Sendable, Hashable {
    public var bandwidthBitsPerSecond: UInt64
    public var quotaBytes: UInt64

    public init(bandwidthBitsPerSecond: UInt64, quotaBytes: UInt64) {
        self.bandwidthBitsPerSecond = bandwidthBitsPerSecond
        self.quotaBytes = quotaBytes
    }

    /// The token's value narrowed to the tier (§3): 0 = the tier's; lower narrows; higher is capped.
    static func effective(token: UInt64, tier: UInt64) -> UInt64 {
        if token == 0 { return tier }
        if tier == 0 { return token }
        return min(token, tier)
    }
}

/// A read-only view of one allocation for the admin API.
public struct AllocationSnapshot: Sendable, Hashable {
    public var id: AllocationID
    public var state: PeerState
    public var signer: SignerKey
    public var tier: Tier
    public var peerABound: Bool
    public var peerBBound: Bool
    public var bytesAToB: UInt64
    public var bytesBToA: UInt64
    public var quotaBytes: UInt64
    public var bandwidthBitsPerSecond: UInt64
    public var expiresAt: UInt64
    public var age: Duration
    /// Peer A's side, then peer B's.
    public var sides: [Side] = []
    /// Unix seconds of creation (on the first instance that served it).
    public var createdAtUnix: UInt64 = 0
    /// The latest token expiry seen, and the allocation_timeout cap.
    public var tokenExpiresAt: UInt64 = 0
    public var latestEnd: UInt64 = 0
    /// Payload bytes forwarded both ways, counted against the quota.
    public var usedBytes: UInt64 = 0
    /// Time since the last datagram forwarded or connection bound (or since creation).
    public var sinceLastActivity: Duration = .zero

    /// One peer of an allocation.
    public struct Side: Sendable, Hashable {
        public var peer: PeerID
        /// The bound connection, if the peer is connected.
        public var connection: ConnectionHandle?
        /// How long the current connection has been bound.
        public var boundFor: Duration?
    }
}
