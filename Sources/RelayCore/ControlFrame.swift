/// A control-stream frame (DESIGN §4): `type u8 | length u16 | body`, body ≤ 4096 bytes.
public enum ControlFrame: Hashable, Sendable {
    /// 0x01, client → relay.
    case allocate(peerID: PeerID, token: [UInt8])
    /// 0x02, client → relay.
    case refresh(token: [UInt8])
    /// 0x03, client → relay.
    case release
    /// 0x81, relay → client.
    case allocated(Allocated)
    /// 0x82, relay → client.
    case peer(PeerState)
    /// 0x83, relay → client.
    case quota(used: UInt64, quota: UInt64)
    /// 0x84, relay → client.
    case refreshed(expiresAt: UInt64)
    /// 0x85, relay → client.
    case goAway(GoAway)
    /// 0x86, relay → client.
    case status(kind: StatusKind, dropped: UInt64)
    /// 0xFF, relay → client.
    case error(code: RelayErrorCode, reason: String)

    /// Body of ALLOCATED.
    public struct Allocated: Hashable, Sendable {
        public var allocationID: AllocationID
        public var expiresAt: UInt64
        public var bandwidthBitsPerSecond: UInt64
        /// 0 = no cap.
        public var quotaBytes: UInt64
        public var relayPort: UInt16
        public var relayAddress: String
        /// `ip:port`, IPv6 as `[ip]:port`.
        public var observedAddress: String

        public init(allocationID: AllocationID, expiresAt: UInt64, bandwidthBitsPerSecond: UInt64, quotaBytes: UInt64,
                    relayPort: UInt16, relayAddress: String, observedAddress: String) {
            self.allocationID = allocationID
            self.expiresAt = expiresAt
            self.bandwidthBitsPerSecond = bandwidthBitsPerSecond
            self.quotaBytes = quotaBytes
            self.relayPort = relayPort
            self.relayAddress = relayAddress
            self.observedAddress = observedAddress
        }
    }

    /// Body of GOAWAY.
    public struct GoAway: Hashable, Sendable {
        public var reason: GoAwayReason
        public var reconnectInMilliseconds: UInt32
        public var tryForMilliseconds: UInt32
        /// `host:port` or empty.
        public var alternate: String

        public init(reason: GoAwayReason, reconnectInMilliseconds: UInt32 = 0, tryForMilliseconds: UInt32 = 0, alternate: String = "") {
            self.reason = reason
            self.reconnectInMilliseconds = reconnectInMilliseconds
            self.tryForMilliseconds = tryForMilliseconds
            self.alternate = alternate
        }
    }

    /// The frame type byte.
    public var typeByte: UInt8 {
        switch self {
        case .allocate: return 0x01
        case .refresh: return 0x02
        case .release: return 0x03
        case .allocated: return 0x81
        case .peer: return 0x82
        case .quota: return 0x83
        case .refreshed: return 0x84
        case .goAway: return 0x85
        case .status: return 0x86
        case .error: return 0xFF
        }
    }
}

/// PEER state.
public enum PeerState: UInt8, Hashable, Sendable {
    case waiting = 0, paired = 1, peerGone = 2
}

/// GOAWAY reason.
public enum GoAwayReason: UInt8, Hashable, Sendable {
    case shutdown = 0, redirect = 1, replaced = 2
}

/// STATUS kind.
public enum StatusKind: UInt8, Hashable, Sendable {
    /// Datagrams are being dropped by the bandwidth cap.
    case throttled = 0
}
