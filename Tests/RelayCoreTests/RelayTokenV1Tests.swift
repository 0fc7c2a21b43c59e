import Crypto
import Testing
@testable import RelayCore

@Suite struct RelayTokenV1Tests {
    @Test func mintedTokenHasTheDesignLayout() throws {
        let t = Fixture.token(audience: "zrc-prod", tier: .paid, bandwidth: 123, quota: 456)
        let b = t.bytes
        #expect(b.count == 194)
        #expect(b[0] == 1)
        #expect(Array(b[1..<33]) == Fixture.signer.bytes)
        #expect(Array(b[33..<49]) == RelayTokenV1.audienceHash("zrc-prod"))
        #expect(Array(b[49..<65]) == Fixture.allocation.bytes)
        #expect(Array(b[65..<81]) == Fixture.peerA.bytes)
        #expect(Array(b[81..<97]) == Fixture.peerB.bytes)
        #expect(Array(b[97..<105]) == [0, 0, 0, 0, 0x6B, 0x49, 0xD1, 0xF6])  // now − 10, big-endian
        #expect(b[113] == 1)
        #expect(Array(b[114..<122]) == [0, 0, 0, 0, 0, 0, 0, 123])
        #expect(Array(b[122..<130]) == [0, 0, 0, 0, 0, 0, 0x01, 0xC8])
        // The signature covers the context string and the 130 bytes before it.
        let key = Fixture.deviceKey.publicKey
        #expect(key.isValidSignature(Array(b[130...]), for: Array("ZRC-RELAY-TOKEN-V1".utf8) + Array(b[0..<130])))
        #expect(try RelayTokenV1(bytes: b) == t)
        #expect(try RelayTokenV1(text: t.text) == t)
        #expect(!t.text.contains("=") && !t.text.contains("+") && !t.text.contains("/"))
    }

    @Test func malformedTokensAreInvalid() {
        let b = Fixture.token().bytes
        #expect(throws: RelayError.invalidToken("")) { try RelayTokenV1(bytes: b.dropLast()) }
        #expect(throws: RelayError.invalidToken("")) { try RelayTokenV1(bytes: b + [0]) }
        var v2 = b; v2[0] = 2
        #expect(throws: RelayError.invalidToken("")) { try RelayTokenV1(bytes: v2) }
        // The tier byte is judged after the signature (TokenVerifier), not while decoding.
        var badTier = b; badTier[113] = 3
        #expect((try? RelayTokenV1(bytes: badTier))?.hasKnownTier == false)
        #expect(throws: RelayError.invalidToken("")) { try RelayTokenV1(text: "not*base64") }
        #expect(throws: RelayError.invalidToken("")) { try RelayTokenV1(text: Fixture.token().text + "==") }
    }

    @Test func base64urlIsStrict() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 37 + n) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xFB, 0xFF])
        #expect(Base64URL.decode("-_9") == nil)  // non-canonical trailing bits
        #expect(Base64URL.decode("AAA=") == nil)
        #expect(Base64URL.decode("A") == nil)
        #expect(Base64URL.decode("+/8") == nil)
    }

    @Test func ids() {
        let id = ID16(hex: "00112233445566778899AABBCCDDEEFF")
        #expect(id?.description == "00112233445566778899aabbccddeeff")
        #expect(ID16(hex: "0011") == nil)
        #expect(ID16(hex: "zz112233445566778899aabbccddeeff") == nil)
        #expect(ID16(bytes: id!.bytes) == id)
    }
}
