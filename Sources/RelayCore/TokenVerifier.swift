/// The outcome of verifying a token: a value, not an error (an untrusted key is an expected case).
public enum TokenVerification: Sendable, Hashable {
    case valid(RelayTokenV1)
    case rejected(RelayErrorCode)
}

/// Verifies relay tokens in the order of DESIGN §3, with a bounded cache of tokens whose
/// signature has already been checked, and the revocation sets.
public struct TokenVerifier: Sendable {
    /// What the verifier accepts.
    public struct Configuration: Sendable, Hashable {
        public var trustedKeys: Set<SignerKey>
        /// `auth.audience`; `nil` = tokens may carry any audience.
        public var audience: String?
        public var clockSkewSeconds: UInt64
        public var maxTokenLifetimeSeconds: UInt64

        public init(trustedKeys: Set<SignerKey>, audience: String? = nil, clockSkewSeconds: UInt64 = 30,
                    maxTokenLifetimeSeconds: UInt64 = 86_400) {
            self.trustedKeys = trustedKeys
            self.audience = audience
            self.clockSkewSeconds = clockSkewSeconds
            self.maxTokenLifetimeSeconds = maxTokenLifetimeSeconds
        }
    }

    public private(set) var configuration: Configuration
    private var audienceHash: [UInt8]?
    /// Full token bytes → expires_at of tokens whose signature verified.
    private var cache: [[UInt8]: UInt64] = [:]
    private var cacheOrder: [[UInt8]] = []
    public let cacheCapacity: Int
    public private(set) var revokedAllocations: Set<AllocationID> = []
    public private(set) var revokedSigners: Set<SignerKey> = []

    public init(configuration: Configuration, cacheCapacity: Int = 10_000) {
        self.configuration = configuration
        self.audienceHash = configuration.audience.map(RelayTokenV1.audienceHash)
        self.cacheCapacity = max(1, cacheCapacity)
    }

    /// Replaces trusted keys and audience (SIGHUP); the cache is cleared.
    public mutating func reconfigure(_ configuration: Configuration) {
        self.configuration = configuration
        self.audienceHash = configuration.audience.map(RelayTokenV1.audienceHash)
        cache.removeAll()
        cacheOrder.removeAll()
    }

    public mutating func revoke(allocationID: AllocationID) { revokedAllocations.insert(allocationID) }
    public mutating func revoke(signer: SignerKey) { revokedSigners.insert(signer) }
    /// Lifts a revocation of an allocation id.
    public mutating func unrevoke(allocationID: AllocationID) { revokedAllocations.remove(allocationID) }
    /// Lifts a revocation of a signer key.
    public mutating func unrevoke(signer: SignerKey) { revokedSigners.remove(signer) }

    /// Verifies `bytes` (binary form) at Unix time `nowUnix`.
    public mutating func verify(_ bytes: [UInt8], nowUnix: UInt64) -> TokenVerification {
        // 1. Length and version.
        guard let token = try? RelayTokenV1(bytes: bytes) else { return .rejected(.invalidToken) }
        // 2. Signer trusted.
        guard configuration.trustedKeys.contains(token.signer) else { return .rejected(.untrustedKey) }
        // 3. Signature, before any other field is believed (skipped for a token verified before).
        if cache[bytes] == nil {
            guard token.hasValidSignature else { return .rejected(.invalidToken) }
            remember(bytes, expiresAt: token.expiresAt, nowUnix: nowUnix)
        }
        // The tier byte, now that the signature says the bytes are the signer's.
        guard token.hasKnownTier else { return .rejected(.invalidToken) }
        // 4. Audience.
        if let audienceHash, !ConstantTime.equal(token.audience, audienceHash) { return .rejected(.wrongAudience) }
        // 5. Not yet valid.
        let (earliest, underflow) = token.issuedAt.subtractingReportingOverflow(configuration.clockSkewSeconds)
        if !underflow, nowUnix < earliest { return .rejected(.tokenNotYetValid) }
        // 6. Expired.
        guard nowUnix < token.expiresAt else { return .rejected(.tokenExpired) }
        // 7. Lifetime.
        guard token.expiresAt >= token.issuedAt,
              token.expiresAt - token.issuedAt <= configuration.maxTokenLifetimeSeconds
        else { return .rejected(.invalidToken) }
        // 8. Revoked.
        if revokedAllocations.contains(token.allocationID) || revokedSigners.contains(token.signer) {
            return .rejected(.revoked)
        }
        return .valid(token)
    }

    /// Tokens currently cached (for tests and stats).
    public var cachedCount: Int { cache.count }

    private mutating func remember(_ bytes: [UInt8], expiresAt: UInt64, nowUnix: UInt64) {
        if cache.count >= cacheCapacity {
            // Drop expired entries first; if none, the oldest.
            let before = cache.count
            cache = cache.filter { $0.value > nowUnix }
            if cache.count < before {
                cacheOrder.removeAll { cache[$0] == nil }
            } else if !cacheOrder.isEmpty {
                cache[cacheOrder.removeFirst()] = nil
            }
        }
        cache[bytes] = expiresAt
        cacheOrder.append(bytes)
    }
}

/// Comparison whose time does not depend on where the inputs differ.
enum ConstantTime {
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
