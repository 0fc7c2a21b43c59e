import RelayCore
import Testing

@Suite struct RevocationListTests {
    let id = AllocationID(high: 0x0011_2233_4455_6677, low: 0x8899_aabb_ccdd_eeff)
    let key = SignerKey(bytes: [UInt8](repeating: 7, count: 32))!

    @Test func addExtendsRemoveAndExpire() {
        var list = RevocationList()
        list.add(.allocation(id), until: 100)
        list.add(.allocation(id), until: 50)  // the later until wins
        list.add(.signer(key), until: 10)
        #expect(list.all == [.init(target: .allocation(id), until: 100), .init(target: .signer(key), until: 10)])
        let expired = list.removeExpired(nowUnix: 11)
        #expect(expired == [.signer(key)])
        let first = list.remove(.allocation(id))
        let second = list.remove(.allocation(id))
        #expect(first && !second)
        #expect(list.count == 0)
    }

    @Test func fileFormRoundTripsAndBadLinesNameTheirNumber() throws {
        var list = RevocationList()
        list.add(.allocation(id), until: 1_767_225_600)
        list.add(.signer(key), until: 1_767_225_601)
        #expect(try RevocationList(fileText: list.fileText) == list)
        #expect(list.fileText.contains("allocation 00112233445566778899aabbccddeeff 1767225600"))
        for (text, line) in [("allocation xyz 1", 1), ("# c\nsigner short 1", 2), ("allocation \(id) soon", 1),
                             ("revoke \(id) 1", 1), ("allocation \(id)", 1)] {
            #expect(throws: RevocationList.FileError.self) { try RevocationList(fileText: text) }
            do { _ = try RevocationList(fileText: text) } catch { #expect(error.line == line, "\(text)") }
        }
        #expect(try RevocationList(fileText: "\n# only comments\n\n").count == 0)
    }

    @Test func targetsParseFromTheirText() {
        #expect(RevocationList.Target(text: id.description) == .allocation(id))
        #expect(RevocationList.Target(text: key.base64url) == .signer(key))
        #expect(RevocationList.Target(text: "nope") == nil)
    }
}
