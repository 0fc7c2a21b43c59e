import RedisClient
import RelayCore
import Testing

/// The RESP2/RESP3 parser: every reply type, replies split anywhere, limits and errors.
@Suite struct RESPParserTests {
    static func parseAll(_ text: String, limits: RESPParser.Limits = .init()) throws -> [RESPValue] {
        var parser = RESPParser(limits: limits)
        parser.append(Array(text.utf8))
        var out: [RESPValue] = []
        while let value = try parser.next() { out.append(value) }
        return out
    }

    @Test func everyReplyType() throws {
        let wire = "+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*2\r\n:1\r\n$1\r\nx\r\n"
            + "_\r\n#t\r\n#f\r\n,3.5\r\n,inf\r\n(123456789012345678901234567890\r\n!9\r\nERR bulky\r\n=8\r\ntxt:abcd\r\n"
            + "%1\r\n+k\r\n:7\r\n~2\r\n:1\r\n:2\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\np\r\n|1\r\n+ttl\r\n:3\r\n:99\r\n"
        let values = try Self.parseAll(wire)
        #expect(values == [
            .simpleString("OK"), .error("ERR wrong"), .integer(-42), .bulkString(Array("hello".utf8)), .bulkString([]),
            .bulkString(nil), .array(nil), .array([.integer(1), .bulkString([UInt8(ascii: "x")])]),
            .null, .boolean(true), .boolean(false), .double(3.5), .double(.infinity),
            .bigNumber("123456789012345678901234567890"), .error("ERR bulky"), .verbatim(format: "txt", text: Array("abcd".utf8)),
            .map([RESPPair(key: .simpleString("k"), value: .integer(7))]), .set([.integer(1), .integer(2)]),
            .push([.bulkString(Array("message".utf8)), .bulkString(Array("ch".utf8)), .bulkString([UInt8(ascii: "p")])]),
            .integer(99),  // the attribute before it is dropped
        ])
    }

    /// Any split of the bytes gives the same replies.
    @Test func repliesSplitAnywhere() throws {
        let wire = Array("*3\r\n$3\r\nfoo\r\n%1\r\n+a\r\n*1\r\n:5\r\n,1.25\r\n+PONG\r\n".utf8)
        let whole = try Self.parseAll(String(decoding: wire, as: UTF8.self))
        #expect(whole.count == 2)
        for cut in 0...wire.count {
            var parser = RESPParser()
            var out: [RESPValue] = []
            parser.append(wire[..<cut])
            while let value = try parser.next() { out.append(value) }
            parser.append(wire[cut...])
            while let value = try parser.next() { out.append(value) }
            #expect(out == whole, "cut at \(cut)")
        }
        var bytewise = RESPParser()
        var out: [RESPValue] = []
        for byte in wire {
            bytewise.append([byte])
            while let value = try bytewise.next() { out.append(value) }
        }
        #expect(out == whole)
        #expect(bytewise.bufferedCount == 0)
    }

    @Test func malformedAndOversizedRepliesAreErrors() {
        var small = RESPParser.Limits()
        small.maximumBulkLength = 10
        small.maximumElements = 3
        small.maximumDepth = 2
        small.maximumLineLength = 16
        for bad in ["?x\r\n", ":12a\r\n", "$-2\r\n", "$11\r\n", "*4\r\n", "*1\r\n*1\r\n*1\r\n:1\r\n", "#x\r\n", ",abc\r\n",
                    "(12x\r\n", "_x\r\n", "$3\r\nabcde\r\n", "+ok\rX", "=3\r\nabc\r\n", "+" + String(repeating: "a", count: 40),
                    "%-1\r\n", "!-1\r\n"] {
            #expect(throws: RESPError.self, "\(bad.debugDescription)") { _ = try Self.parseAll(bad, limits: small) }
        }
        // Incomplete is not an error.
        let incomplete = try? Self.parseAll("$5\r\nhel")
        let incompleteArray = try? Self.parseAll("*2\r\n:1\r\n")
        #expect(incomplete == [] && incompleteArray == [])
    }

    @Test func commandsAreArraysOfBulkStrings() throws {
        let bytes = RESPEncoder.command(["SET", "k", "välue"])
        #expect(String(decoding: bytes, as: UTF8.self) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\nvälue\r\n")
        // The encoder's output is valid RESP the parser reads back as an array of bulk strings.
        #expect(try Self.parseAll(String(decoding: bytes, as: UTF8.self)) == [.array([.bulkString(Array("SET".utf8)),
                                                                                  .bulkString(Array("k".utf8)),
                                                                                  .bulkString(Array("välue".utf8))])])
    }
}

@Suite struct RedisURLTests {
    @Test func partsAndRedaction() throws {
        let plain = try RedisURL(parsing: "redis://127.0.0.1:6380/2")
        #expect(plain.host == "127.0.0.1" && plain.port == 6380 && plain.database == 2 && !plain.tls && plain.password == nil)
        let secret = try RedisURL(parsing: "rediss://relay:p%40ss@redis.example.net")
        #expect(secret.tls && secret.username == "relay" && secret.password == "p@ss" && secret.port == 6379)
        #expect(!secret.description.contains("p@ss") && secret.description.contains("<redacted>"))
        let passwordOnly = try RedisURL(parsing: "redis://:pw@[::1]:7000")
        #expect(passwordOnly.username == nil && passwordOnly.password == "pw" && passwordOnly.host == "::1" && passwordOnly.port == 7000)
        for bad in ["http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h/db", "redis://[::1", "redis://h h"] {
            #expect(throws: RedisURL.ParseError.self, "\(bad)") { _ = try RedisURL(parsing: bad) }
        }
    }

    @Test func backoffGrowsToItsCapWithFullJitter() {
        let backoff = ExponentialBackoff(base: .milliseconds(100), cap: .seconds(2))
        #expect(backoff.ceiling(attempt: 0) == .milliseconds(100))
        #expect(backoff.ceiling(attempt: 3) == .milliseconds(800))
        #expect(backoff.ceiling(attempt: 10) == .seconds(2))
        #expect(backoff.ceiling(attempt: 1000) == .seconds(2))
        #expect(backoff.delay(attempt: 3, unit: 0) == .zero)
        #expect(backoff.delay(attempt: 3, unit: 0.5) == .milliseconds(400))
    }
}
