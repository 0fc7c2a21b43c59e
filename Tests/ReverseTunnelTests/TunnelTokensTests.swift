@testable import ReverseTunnel
import Testing

@Suite struct TunnelTokensTests {
    private func name(_ text: String) -> TunnelName { TunnelName(text)! }

    @Test func parsesNamesTokensCommentsAndBlankLines() throws {
        let file = "# tokens\n\nalpha  tok-a\r\nbeta\ttok-b # trailing comment\n   \n"
        let table = try TunnelTokensFileParser.parse(Array(file.utf8))
        #expect(table == [name("alpha"): Array("tok-a".utf8), name("beta"): Array("tok-b".utf8)])
    }

    @Test func refusesBadLinesWithTheirNumberAndNeverTheToken() {
        let cases: [(String, Int)] = [
            ("alpha\n", 1), ("ok tok\nalpha a b\n", 2), ("Bad_Name tok\n", 1), ("a t\na u\n", 2), ("a -\n", 1),
            ("a sec\u{7F}ret\n", 1),
        ]
        for (file, line) in cases {
            #expect(throws: TunnelTokensFileParser.ParseError.self) { try TunnelTokensFileParser.parse(Array(file.utf8)) }
            do {
                _ = try TunnelTokensFileParser.parse(Array(file.utf8))
            } catch {
                #expect(error.line == line, "\(file)")
                #expect(!error.description.contains("sec"))
            }
        }
        #expect(throws: TunnelTokensFileParser.ParseError.self) { try TunnelTokensFileParser.parse(Array("# nothing\n".utf8)) }
        #expect(throws: TunnelTokensFileParser.ParseError.self) {
            try TunnelTokensFileParser.parse([UInt8](repeating: 0x23, count: TunnelTokensFileParser.maximumFileLength + 1))
        }
        #expect(throws: TunnelTokensFileParser.ParseError.self) {
            try TunnelTokensFileParser.parse(Array("a \(String(repeating: "t", count: 1025))".utf8))
        }
    }

    @Test func aPerNameTokenIsValidOnlyForItsName() {
        let tokens = TunnelTokens.perName([name("alpha"): Array("ta".utf8), name("beta"): Array("tb".utf8)])
        #expect(tokens.authorize(name: name("alpha"), token: Array("ta".utf8)) == .allowed)
        #expect(tokens.authorize(name: name("alpha"), token: Array("tb".utf8)) == .denied("name not allowed for this token"))
        #expect(tokens.authorize(name: name("gamma"), token: Array("ta".utf8)) == .denied("name not allowed for this token"))
        #expect(tokens.authorize(name: name("alpha"), token: nil) == .denied("token required"))
        #expect(tokens.reservedNames == [name("alpha"), name("beta")])
        #expect(!tokens.allowsRandomNames)
        #expect(!"\(tokens)".contains("ta"))
    }

    @Test func sharedAndOpenTokens() {
        let shared = TunnelTokens.shared(Array("s3cret".utf8))
        #expect(shared.authorize(name: name("any"), token: Array("s3cret".utf8)) == .allowed)
        #expect(shared.authorize(name: name("any"), token: Array("s3cre".utf8)) == .denied("bad token"))
        #expect(shared.authorize(name: name("any"), token: nil) == .denied("token required"))
        #expect(shared.allowsRandomNames && shared.requiresToken && shared.reservedNames.isEmpty)
        #expect(TunnelTokens.open.authorize(name: name("any"), token: nil) == .allowed)
        #expect(!TunnelTokens.open.requiresToken)
    }
}
