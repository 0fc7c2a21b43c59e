import Crypto

/// The relay token (DESIGN §3): 194 bytes, big-endian, signed by the device's Ed25519 key.
///
/// | field | bytes |
/// |---|---|
/// | version = 1 | 1 |
/// | signer public key | 32 |
/// | audience hash (or zero) | 16 |
/// | allocation_id | 16 |
/// | peer_a, peer_b | 16 + 16 |
/// | issued_at, expires_at (Unix s) | 8 + 8 |
/// | tier | 1 |
/// | bandwidth_bps, quota_bytes | 8 + 8 |
/// | signature over `"ZRC-RELAY-TOKEN-V1"` ‖ the 130 bytes above | 64 |
public struct RelayTokenV1: Hashable, Sendable {
    public static let encodedLength = 194
    static let signedLength = 130
    static let signatureContext = Array("ZRC-RELAY-TOKEN-V1".utf8)

    public var signer: SignerKey
    /// Zero, or the first 16 bytes of SHA-256 of the fleet's `auth.audience`.
    public var audience: [UInt8]
    public var allocationID: AllocationID
    public var peerA: PeerID
    public var peerB: PeerID
    public var issuedAt: UInt64
    public var expiresAt: UInt64
    public var tier: Tier
    /// The tier byte as received; `tier` is `.free` when it is unknown (> 2), which
    /// ``hasKnownTier`` tells apart.
    public private(set) var tierByte: UInt8
    /// Whether the tier byte names a tier (0 free, 1 paid, 2 unlimited).
    public var hasKnownTier: Bool { Tier(rawValue: tierByte) != nil }
    /// 0 = the tier's value.
    public var bandwidthBitsPerSecond: UInt64
    /// 0 = the tier's value.
    public var quotaBytes: UInt64
    public var signature: [UInt8]

    /// Decodes the binary form without verifying anything but length, version and field ranges.
    public init(bytes input: some Collection<UInt8>) throws(RelayError) {
        let b = Array(input)
        guard b.count == Self.encodedLength else {
            throw .invalidToken("token is \(b.count) bytes, expected \(Self.encodedLength)")
        }
        guard b[0] == 1 else { throw .invalidToken("token version \(b[0]) is not 1") }
        guard let signer = SignerKey(bytes: b[1..<33]),
              let allocationID = AllocationID(bytes: b[49..<65]),
              let peerA = PeerID(bytes: b[65..<81]),
              let peerB = PeerID(bytes: b[81..<97])
        else { throw .invalidToken("token fields are malformed") }
        // The tier byte is judged after the signature, like every other field (DESIGN §3 v3):
        // decoding keeps it, `TokenVerifier` refuses an unknown one once the signature holds.
        self.tierByte = b[113]
        self.signer = signer
        self.audience = Array(b[33..<49])
        self.allocationID = allocationID
        self.peerA = peerA
        self.peerB = peerB
        self.issuedAt = Self.u64(b, 97)
        self.expiresAt = Self.u64(b, 105)
        self.tier = Tier(rawValue: b[113]) ?? .free
        self.bandwidthBitsPerSecond = Self.u64(b, 114)
        self.quotaBytes = Self.u64(b, 122)
        self.signature = Array(b[130..<194])
    }

    /// Builds and signs a token.
    public static func mint(
        signingKey: Curve25519.Signing.PrivateKey, audience: String?, allocationID: AllocationID,
        peerA: PeerID, peerB: PeerID, issuedAt: UInt64, expiresAt: UInt64, tier: Tier,
        bandwidthBitsPerSecond: UInt64 = 0, quotaBytes: UInt64 = 0
    ) throws -> RelayTokenV1 {
        var body: [UInt8] = [1]
        body += signingKey.publicKey.rawRepresentation
        body += audience.map(Self.audienceHash) ?? [UInt8](repeating: 0, count: 16)
        body += allocationID.bytes + peerA.bytes + peerB.bytes
        body += Self.bytes(issuedAt) + Self.bytes(expiresAt)
        body.append(tier.rawValue)
        body += Self.bytes(bandwidthBitsPerSecond) + Self.bytes(quotaBytes)
        let signature = try signingKey.signature(for: signatureContext + body)
        return try RelayTokenV1(bytes: body + Array(signature))
    }

    /// The 194-byte binary form.
    public var bytes: [UInt8] { signedBytes + signature }

    /// The 130 signed bytes (without the context prefix).
    public var signedBytes: [UInt8] {
        var body: [UInt8] = [1]
        body += signer.bytes + audience + allocationID.bytes + peerA.bytes + peerB.bytes
        body += Self.bytes(issuedAt) + Self.bytes(expiresAt)
        body.append(tierByte)  // as received: the signature covers the bytes that came
        body += Self.bytes(bandwidthBitsPerSecond) + Self.bytes(quotaBytes)
        return body
    }

    /// The text form: base64url without padding.
    public var text: String { Base64URL.encode(bytes) }

    /// Parses the text form.
    public init(text: String) throws(RelayError) {
        guard let decoded = Base64URL.decode(text.trimmingWhitespace) else {
            throw .invalidToken("token is not base64url")
        }
        try self.init(bytes: decoded)
    }

    /// Whether the signature is valid for the signer key in the token.
    public var hasValidSignature: Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: signer.bytes) else { return false }
        return key.isValidSignature(signature, for: Self.signatureContext + signedBytes)
    }

    /// First 16 bytes of SHA-256 of an audience name.
    public static func audienceHash(_ audience: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(audience.utf8)).prefix(16))
    }

    /// Whether `peer` is one of the two peers this token names.
    public func allows(_ peer: PeerID) -> Bool { peer == peerA || peer == peerB }

    static func u64(_ b: [UInt8], _ offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in offset..<(offset + 8) { v = v << 8 | UInt64(b[i]) }
        return v
    }

    static func bytes(_ v: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) }
    }
}

/// Service tiers (token byte 113).
public enum Tier: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case free = 0, paid = 1, unlimited = 2

    public init?(name: String) {
        switch name {
        case "free": self = .free
        case "paid": self = .paid
        case "unlimited": self = .unlimited
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .free: return "free"
        case .paid: return "paid"
        case .unlimited: return "unlimited"
        }
    }
}

extension String {
    var trimmingWhitespace: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
