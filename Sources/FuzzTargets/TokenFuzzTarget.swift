import Crypto
import RelayCore

/// `RelayTokenV1` decoding and `TokenVerifier`, with one fixed trusted Ed25519 key.
///
/// Input: `mode u8 | now u64 | options u8 | payload`. Modes (`mode % 5`):
/// 0. the payload is the binary token, as received;
/// 1. the first 130 payload bytes are the signed part; the target sets the signer field to the
///    trusted key and signs them with it, so the checks after the signature get explored;
/// 2. as 1, but signer field and signature are another key's (valid signature, untrusted key);
/// 3. as 1, signer field trusted but signed by the other key (a forgery);
/// 4. the payload is the text form (base64url).
///
/// `options`: bit 0 sets an audience, bit 1 the lifetime cap (1 day or 10 min), bits 2–3 the
/// clock skew (0, 30 s, 1 h, UInt64.max), bits 4–7 which signature byte to flip.
///
/// The property that matters: `.valid` only for bytes whose signature verifies (checked here
/// independently with swift-crypto) under the trusted key, and only when every other rule of
/// DESIGN §3 holds. Also: decoding round-trips, a cached verdict equals the first one, an
/// accepted token with one signature bit flipped is refused, revocation and key removal take
/// effect.
public enum TokenFuzzTarget {
    static let signatureContext = Array("ZRC-RELAY-TOKEN-V1".utf8)
    static let audience = "fleet-a"

    // Fixed keys: a raw 32-byte Ed25519 seed is always a valid private key.
    static let trustedKey = fixedKey(seed: 0x5A)
    static let otherKey = fixedKey(seed: 0xC3)
    static let trustedSigner = SignerKey(bytes: trustedKey.publicKey.rawRepresentation)

    static func fixedKey(seed: UInt8) -> Curve25519.Signing.PrivateKey {
        let raw = (0..<32).map { UInt8(truncatingIfNeeded: Int(seed) &+ $0 &* 7) }
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            fatalError("a 32-byte Ed25519 seed was refused")
        }
        return key
    }

    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let mode = input.u8() % 5
        let now = input.u64()
        let options = input.u8()
        let payload = Array(input.rest())

        let tokenBytes: [UInt8]
        switch mode {
        case 0:
            tokenBytes = payload
        case 1, 2, 3:
            var body = Array(payload.prefix(130))
            body += [UInt8](repeating: 0, count: 130 - body.count)
            let signerKey = mode == 1 ? trustedKey : otherKey
            let fieldKey = mode == 2 ? otherKey : trustedKey
            body.replaceSubrange(1..<33, with: fieldKey.publicKey.rawRepresentation)
            guard let signature = try? signerKey.signature(for: signatureContext + body) else {
                fuzzCheck(false, "signing failed")
                return
            }
            tokenBytes = body + Array(signature)
        default:
            let text = String(decoding: payload, as: UTF8.self)
            checkTextDecoding(text)
            guard let decoded = Base64URL.decode(text) ?? (try? RelayTokenV1(text: text))?.bytes else { return }
            tokenBytes = decoded
        }

        checkDecoding(tokenBytes)
        checkVerification(tokenBytes, now: now, options: options, mayBeValid: mode == 0 || mode == 1 || mode == 4)
    }

    static func checkTextDecoding(_ text: String) {
        guard let token = try? RelayTokenV1(text: text) else { return }
        fuzzCheck((try? RelayTokenV1(text: token.text)) == token, "text form does not round-trip")
    }

    static func checkDecoding(_ bytes: [UInt8]) {
        guard let token = try? RelayTokenV1(bytes: bytes) else {
            return
        }
        fuzzCheck(bytes.count == RelayTokenV1.encodedLength, "decoded a token of \(bytes.count) bytes")
        fuzzCheck(token.bytes == bytes, "binary form does not round-trip")
        fuzzCheck(token.signedBytes == Array(bytes[0..<130]), "signed bytes differ from the input")
        fuzzCheck((try? RelayTokenV1(text: token.text)) == token, "text form does not round-trip")
    }

    static func checkVerification(_ bytes: [UInt8], now: UInt64, options: UInt8, mayBeValid: Bool) {
        let maxLifetime: UInt64 = options & 2 == 0 ? 86_400 : 600
        let skew: UInt64 = [0, 30, 3600, UInt64.max][Int(options >> 2 & 3)]
        let audience = options & 1 == 0 ? nil : Self.audience
        guard let trustedSigner else {
            fuzzCheck(false, "the trusted key has no SignerKey")
            return
        }
        let configuration = TokenVerifier.Configuration(
            trustedKeys: [trustedSigner], audience: audience, clockSkewSeconds: skew, maxTokenLifetimeSeconds: maxLifetime)
        var verifier = TokenVerifier(configuration: configuration, cacheCapacity: 2)

        let first = verifier.verify(bytes, nowUnix: now)
        if case .valid(let token) = first {
            fuzzCheck(mayBeValid, "a token not signed by the trusted key was accepted")
            fuzzCheck(token.bytes == bytes, "the accepted token differs from the input")
            fuzzCheck(token.signer == trustedSigner, "accepted a token from another signer")
            fuzzCheck(signatureIsValid(bytes), "accepted a token whose signature does not verify")
            if let audience {
                fuzzCheck(token.audience == RelayTokenV1.audienceHash(audience), "accepted a token for another audience")
            }
            fuzzCheck(now < token.expiresAt, "accepted an expired token")
            fuzzCheck(token.expiresAt >= token.issuedAt && token.expiresAt - token.issuedAt <= maxLifetime,
                      "accepted a token whose lifetime exceeds the cap")
            if token.issuedAt >= skew {
                fuzzCheck(now >= token.issuedAt - skew, "accepted a token that is not yet valid")
            }
        }

        // The second verification may come from the cache; it must agree.
        fuzzCheck(verifier.verify(bytes, nowUnix: now) == first, "a cached verification disagrees with the first")

        // One flipped signature bit of an accepted token (its verdict is cached under other
        // bytes). Only of an accepted one: flipping a bit of an invalid signature may repair it.
        if case .valid = first {
            var flipped = bytes
            let bit = Int(options >> 4)
            flipped[130 + bit * 4] ^= UInt8(1) << (bit & 7)
            if case .valid = verifier.verify(flipped, nowUnix: now) {
                fuzzCheck(false, "accepted a token with a flipped signature bit")
            }
        }

        if case .valid(let token) = first {
            verifier.revoke(allocationID: token.allocationID)
            fuzzCheck(verifier.verify(bytes, nowUnix: now) == .rejected(.revoked), "a revoked allocation was accepted")
            var keyless = configuration
            keyless.trustedKeys = []
            verifier.reconfigure(keyless)
            fuzzCheck(verifier.verify(bytes, nowUnix: now) == .rejected(.untrustedKey), "accepted after the key was removed")
        }
    }

    /// Checked here with swift-crypto, independently of `RelayTokenV1.hasValidSignature`.
    static func signatureIsValid(_ bytes: [UInt8]) -> Bool {
        guard bytes.count == RelayTokenV1.encodedLength,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes[1..<33]),
              key.rawRepresentation == trustedKey.publicKey.rawRepresentation
        else { return false }
        return key.isValidSignature(bytes[130..<194], for: signatureContext + bytes[0..<130])
    }

    // MARK: Seeds

    static let seedNow: UInt64 = 1_700_000_100

    static func mint(audience: String?, tier: Tier, lifetime: UInt64, bandwidth: UInt64 = 0) -> RelayTokenV1? {
        try? RelayTokenV1.mint(
            signingKey: trustedKey, audience: audience,
            allocationID: AllocationID(high: 0x1111_2222_3333_4444, low: 0x5555_6666_7777_8888),
            peerA: PeerID(high: 1, low: 2), peerB: PeerID(high: 3, low: 4),
            issuedAt: 1_700_000_000, expiresAt: 1_700_000_000 + lifetime, tier: tier, bandwidthBitsPerSecond: bandwidth)
    }

    /// A valid token signed by the fixed trusted key (also used by the control-frame seeds).
    static var validTokenBytes: [UInt8] { mint(audience: nil, tier: .free, lifetime: 3600)?.bytes ?? [] }

    public static func seeds() -> [[UInt8]] {
        let tokens = [
            mint(audience: nil, tier: .free, lifetime: 3600),
            mint(audience: audience, tier: .paid, lifetime: 3600, bandwidth: 10_000_000),
            mint(audience: nil, tier: .unlimited, lifetime: 86_400),
        ].compactMap { $0 }
        let now = bigEndian(seedNow)
        var seeds: [[UInt8]] = []
        for token in tokens {
            seeds.append([0] + now + [0x00] + token.bytes)  // valid
            seeds.append([0] + now + [0x01] + token.bytes)  // with an audience
            seeds.append([1] + now + [0x04] + token.signedBytes)  // re-signed
            seeds.append([3] + now + [0x00] + token.signedBytes)  // forged
            seeds.append([4] + now + [0x00] + Array(token.text.utf8))  // text form
        }
        return seeds
    }
}

/// The 8 big-endian bytes of `v`.
func bigEndian(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }
