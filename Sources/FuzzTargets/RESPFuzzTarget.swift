import RedisProtocol

/// `RESPParser` (what a Redis server, or something posing as one, sends) and `RedisURL`.
///
/// Input: `chunkSeed u8, limitSelector u8, stream`. Errors are expected; the properties are
/// that nothing traps, that parsing in chunks gives the same replies (and the same error) as
/// parsing the whole, and that the parser never holds more than the input.
public enum RESPFuzzTarget {
    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let chunkSeed = input.u8()
        let limitSelector = input.u8()
        let stream = Array(input.rest())
        var limits = RESPParser.Limits()
        if limitSelector & 1 == 1 {
            limits.maximumBulkLength = 64
            limits.maximumElements = 8
            limits.maximumDepth = 3
            limits.maximumLineLength = 32
        }
        let whole = parse([stream[...]], limits: limits)
        var chunks: [ArraySlice<UInt8>] = []
        var index = 0
        var size = Int(chunkSeed % 7) + 1
        while index < stream.count {
            let end = min(stream.count, index + size)
            chunks.append(stream[index..<end])
            index = end
            size = (size * 5 + 3) % 11 + 1
        }
        let chunked = parse(chunks, limits: limits)
        fuzzCheck(whole.values == chunked.values, "chunked parsing gave other replies")
        fuzzCheck(whole.failed == chunked.failed, "chunked parsing failed differently")
        if let text = String(validating: stream.prefix(256), as: UTF8.self) {
            if let url = try? RedisURL(parsing: text) {
                fuzzCheck((1...65535).contains(url.port), "a parsed URL has a bad port")
                if let password = url.password, !password.isEmpty, password.count > 3 {
                    fuzzCheck(!url.description.contains(":\(password)@"), "the description shows the password")
                }
            }
        }
    }

    private static func parse(_ chunks: [ArraySlice<UInt8>], limits: RESPParser.Limits) -> (values: [RESPValue], failed: Bool) {
        var parser = RESPParser(limits: limits)
        var values: [RESPValue] = []
        var total = 0
        for chunk in chunks {
            parser.append(chunk)
            total += chunk.count
            fuzzCheck(parser.bufferedCount <= total, "the parser holds more than it was given")
            do {
                while let value = try parser.next() { values.append(value) }
            } catch {
                return (values, true)
            }
        }
        return (values, false)
    }

    public static func seeds() -> [[UInt8]] {
        [
            "+OK\r\n-ERR x\r\n:12\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n:2\r\n",
            "_\r\n#t\r\n,1.5\r\n(123\r\n!3\r\nERR\r\n=7\r\ntxt:abc\r\n%1\r\n+k\r\n+v\r\n~1\r\n:1\r\n>2\r\n+a\r\n+b\r\n|1\r\n+a\r\n+b\r\n:1\r\n",
            "*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$2\r\nhi\r\n",
            "redis://user:pw@127.0.0.1:6380/2",
            "*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ].enumerated().map { index, text in [UInt8(index), UInt8(index & 1)] + Array(text.utf8) }
    }
}
