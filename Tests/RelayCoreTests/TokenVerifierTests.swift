import Crypto
import Testing
@testable import RelayCore

@Suite struct TokenVerifierTests {
    func verifier(audience: String? = nil, trusted: [SignerKey] = [Fixture.signer]) -> TokenVerifier {
        TokenVerifier(configuration: .init(trustedKeys: Set(trusted), audience: audience, clockSkewSeconds: 30,
                                           maxTokenLifetimeSeconds: 86_400))
    }

    @Test func validTokenIsAccepted() {
        var v = verifier()
        let t = Fixture.token()
        #expect(v.verify(t.bytes, nowUnix: Fixture.now) == .valid(t))
        #expect(v.cachedCount == 1)
        #expect(v.verify(t.bytes, nowUnix: Fixture.now) == .valid(t))
    }

    @Test func everyRejectionHasItsCode() {
        var v = verifier(audience: "zrc-prod")
        let now = Fixture.now
        #expect(v.verify([1, 2, 3], nowUnix: now) == .rejected(.invalidToken))
        #expect(v.verify(Fixture.token(key: Fixture.otherKey, audience: "zrc-prod").bytes, nowUnix: now) == .rejected(.untrustedKey))
        var forged = Fixture.token(audience: "zrc-prod").bytes
        forged[150] ^= 1
        #expect(v.verify(forged, nowUnix: now) == .rejected(.invalidToken))
        #expect(v.verify(Fixture.token(audience: "zrc-test").bytes, nowUnix: now) == .rejected(.wrongAudience))
        #expect(v.verify(Fixture.token(audience: nil).bytes, nowUnix: now) == .rejected(.wrongAudience))
        #expect(v.verify(Fixture.token(audience: "zrc-prod", issuedAt: now + 31, expiresAt: now + 600).bytes, nowUnix: now)
                == .rejected(.tokenNotYetValid))
        if case .valid = v.verify(Fixture.token(audience: "zrc-prod", issuedAt: now + 30, expiresAt: now + 600).bytes, nowUnix: now) {} else {
            Issue.record("issued_at within the skew must be accepted")
        }
        #expect(v.verify(Fixture.token(audience: "zrc-prod", issuedAt: now - 100, expiresAt: now).bytes, nowUnix: now) == .rejected(.tokenExpired))
        #expect(v.verify(Fixture.token(audience: "zrc-prod", issuedAt: now - 10, expiresAt: now - 10 + 86_401).bytes, nowUnix: now)
                == .rejected(.invalidToken))
        v.revoke(allocationID: Fixture.allocation)
        #expect(v.verify(Fixture.token(audience: "zrc-prod").bytes, nowUnix: now) == .rejected(.revoked))
        var w = verifier()
        w.revoke(signer: Fixture.signer)
        #expect(w.verify(Fixture.token().bytes, nowUnix: now) == .rejected(.revoked))
    }

    @Test func checkOrderPutsTheSignatureBeforeTheFields() {
        // Expired AND forged: the signature failure must win (no field is believed before it).
        var v = verifier()
        var forged = Fixture.token(expiresAt: Fixture.now - 1).bytes
        forged[140] ^= 0x80
        #expect(v.verify(forged, nowUnix: Fixture.now) == .rejected(.invalidToken))
        // Untrusted AND expired: untrusted_key comes first.
        #expect(v.verify(Fixture.token(key: Fixture.otherKey, expiresAt: Fixture.now - 1).bytes, nowUnix: Fixture.now) == .rejected(.untrustedKey))
    }

    @Test func cacheIsBoundedAndClearedOnReconfigure() {
        var v = TokenVerifier(configuration: .init(trustedKeys: [Fixture.signer]), cacheCapacity: 3)
        for i in 0..<10 {
            let t = Fixture.token(allocation: AllocationID(high: 1, low: UInt64(i)))
            #expect(v.verify(t.bytes, nowUnix: Fixture.now) == .valid(t))
        }
        #expect(v.cachedCount <= 3)
        v.reconfigure(.init(trustedKeys: []))
        #expect(v.cachedCount == 0)
        #expect(v.verify(Fixture.token().bytes, nowUnix: Fixture.now) == .rejected(.untrustedKey))
    }
}

@Suite struct TokenTierByteTests {
    /// A token whose tier byte is `tier`, signed by `key` (so only the tier is odd).
    func token(tier: UInt8, key: Curve25519.Signing.PrivateKey) -> [UInt8] {
        var body = Array(Fixture.token(key: key).bytes.prefix(130))
        body[113] = tier
        let signature = (try? key.signature(for: Array("ZRC-RELAY-TOKEN-V1".utf8) + body)).map { Array($0) } ?? []
        return body + signature
    }

    @Test func theTierByteIsJudgedAfterTrustAndSignature() {
        var v = TokenVerifier(configuration: .init(trustedKeys: [Fixture.signer], audience: nil, clockSkewSeconds: 30,
                                                   maxTokenLifetimeSeconds: 86_400))
        // An untrusted signer is untrusted_key whatever its tier byte says.
        #expect(v.verify(token(tier: 7, key: Fixture.otherKey), nowUnix: Fixture.now) == .rejected(.untrustedKey))
        // A forged signature is invalid_token before the tier is looked at.
        var forged = token(tier: 1, key: Fixture.deviceKey)
        forged[140] ^= 1
        #expect(v.verify(forged, nowUnix: Fixture.now) == .rejected(.invalidToken))
        // A trusted, well-signed token with an unknown tier is invalid_token.
        #expect(v.verify(token(tier: 3, key: Fixture.deviceKey), nowUnix: Fixture.now) == .rejected(.invalidToken))
        if case .valid(let t) = v.verify(token(tier: 1, key: Fixture.deviceKey), nowUnix: Fixture.now) {
            #expect(t.tier == .paid)
        } else {
            Issue.record("tier 1 must verify")
        }
    }
}
