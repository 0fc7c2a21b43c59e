import RelayCore

/// What the relay reports to event subscribers (DESIGN §7: the hook for billing and abuse
/// detection). Produced on the loop thread per allocation or security event — never per
/// datagram — and handed to `RelayServer.eventSink`, which must not block.
public enum RelayEvent: Sendable, Equatable {
    case allocationCreated(AllocationID, signer: SignerKey, tier: Tier)
    case allocationPaired(AllocationID)
    case allocationEnded(AllocationID, signer: SignerKey, tier: Tier, outcome: AllocationOutcome,
                         bytesAToB: UInt64, bytesBToA: UInt64, durationSeconds: Double)
    /// An ALLOCATE or REFRESH token was refused.
    case tokenRefused(code: RelayErrorCode, address: String)
    /// A per-IP limit refused a connection or an allocation.
    case rateLimited(kind: RelayCounters.RateLimitKind, address: String)
    /// A connection from a blocked address was refused or ended.
    case blocked(address: String)
    /// An allocation id or signer key was revoked.
    case revoked(target: String)

    /// The DESIGN §7 event name.
    public var name: String {
        switch self {
        case .allocationCreated: return "allocation_created"
        case .allocationPaired: return "allocation_paired"
        case .allocationEnded: return "allocation_ended"
        case .tokenRefused: return "token_refused"
        case .rateLimited: return "rate_limited"
        case .blocked: return "blocked"
        case .revoked: return "revoked"
        }
    }
}
