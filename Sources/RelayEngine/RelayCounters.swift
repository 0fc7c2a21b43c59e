import RelayCore

/// Everything the relay counts (DESIGN §7). Owned by the relay's loop thread (plain integers,
/// no atomics on the datagram path); readers get a copy through `RelayServer.counters()`.
/// Labels are small enums, never ids or addresses.
public struct RelayCounters: Sendable, Hashable {
    /// Transports a datagram can arrive or leave on.
    public enum Transport: String, Sendable, CaseIterable { case quic, tcp, websocket }
    /// `rate_limit_hits_total{kind}`.
    public enum RateLimitKind: String, Sendable, CaseIterable { case connection, allocation, accept, blocked }

    /// The `result` label of `token_verifications_total`: `ok` or the refusal's code name.
    public enum TokenVerificationResult: Hashable, Sendable, CaseIterable {
        case ok
        case refused(RelayErrorCode)

        /// Every result a verification can have (the refusal codes of DESIGN §3).
        public static let allCases: [TokenVerificationResult] =
            [.ok] + [RelayErrorCode.invalidToken, .untrustedKey, .tokenExpired, .tokenNotYetValid, .wrongAudience, .revoked].map { .refused($0) }

        /// The label value.
        public var label: String {
            switch self {
            case .ok: return "ok"
            case .refused(let code): return code.name
            }
        }
    }

    public var bytesForwarded: [Transport: UInt64] = [:]
    public var packetsForwarded: [Transport: UInt64] = [:]
    public var connections: [Transport: Int] = [:]
    public var packetsDropped: [DropReason: UInt64] = [:]
    public var allocationsEnded: [AllocationOutcome: UInt64] = [:]
    public var allocationsCreated: UInt64 = 0
    public var activeAllocations = 0
    /// Ended allocation ids forgotten early because their memory was full.
    public var endedIDsForgotten: UInt64 = 0
    public var rateLimitHits: [RateLimitKind: UInt64] = [:]
    /// Failed shared-state calls by operation (`shared_state_errors_total{op}`).
    public var sharedStateErrors: [String: UInt64] = [:]
    /// Live fleet instances by region (`fleet_instances`); empty without Redis.
    public var fleetInstances: [String: Int] = [:]
    /// ERROR frames sent and close codes used, by code.
    public var errors: [RelayErrorCode: UInt64] = [:]
    /// Token verifications by result.
    public var tokenVerifications: [TokenVerificationResult: UInt64] = [:]
    /// Ended allocations' durations (seconds) and quota usage ratios, for histograms.
    public var endedDurations: [Double] = []
    public var endedQuotaUsage: [Double] = []
    /// How many quota-usage samples were ever taken (the list above keeps only recent ones).
    public var quotaUsageSamples: UInt64 = 0

    // Fast-path counters kept as plain fields (dictionary updates cost more per datagram).
    var quicPackets: UInt64 = 0
    var quicBytes: UInt64 = 0
    var tcpPackets: UInt64 = 0
    var tcpBytes: UInt64 = 0
    var websocketPackets: UInt64 = 0
    var websocketBytes: UInt64 = 0

    public init() {}

    @inline(__always)
    mutating func forwarded(bytes: Int, transport: Transport) {
        switch transport {
        case .quic:
            quicPackets &+= 1
            quicBytes &+= UInt64(bytes)
        case .tcp:
            tcpPackets &+= 1
            tcpBytes &+= UInt64(bytes)
        case .websocket:
            websocketPackets &+= 1
            websocketBytes &+= UInt64(bytes)
        }
    }

    mutating func dropped(_ reason: DropReason, count: Int = 1) {
        packetsDropped[reason, default: 0] &+= UInt64(max(0, count))
    }

    /// A copy with the fast-path fields folded into the labelled maps.
    func snapshot() -> RelayCounters {
        var copy = self
        copy.packetsForwarded[.quic] = quicPackets
        copy.bytesForwarded[.quic] = quicBytes
        copy.packetsForwarded[.tcp] = tcpPackets
        copy.bytesForwarded[.tcp] = tcpBytes
        copy.packetsForwarded[.websocket] = websocketPackets
        copy.bytesForwarded[.websocket] = websocketBytes
        return copy
    }
}
