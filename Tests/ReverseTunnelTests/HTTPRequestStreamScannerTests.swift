import NIOCore
import NIOHTTP1
@testable import ReverseTunnel
import Testing

@Suite struct HTTPRequestStreamScannerTests {
    /// Feeds `input` in pieces of `chunk` bytes; returns heads (uri) and passed bytes in order.
    private func scan(_ input: String, chunk: Int, limit: Int = 64 * 1024) throws -> (heads: [String], passed: [String]) {
        let scanner = HTTPRequestStreamScanner(maximumHeadLength: limit)
        var heads: [String] = []
        var passed: [String] = []
        var bytes = ByteBuffer(string: input)
        while bytes.readableBytes > 0 {
            let piece = bytes.readSlice(length: min(chunk, bytes.readableBytes))!
            for event in try scanner.feed(piece) {
                switch event {
                case .head(let head):
                    heads.append(head.uri)
                    passed.append("<\(head.uri)>")
                case .bytes(let b):
                    if passed.last?.hasPrefix("<") == false { passed[passed.count - 1] += String(buffer: b) } else { passed.append(String(buffer: b)) }
                }
            }
        }
        return (heads, passed)
    }

    static let pipeline =
        "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
        "POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\n\nx\r\n0\r\nTrailer: t\r\n\r\n" +
        "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n" +
        "GET /4 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" +
        "PUT /5 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n\n\n"

    @Test(arguments: [1, 2, 3, 7, 16, 64, 1000])
    func findsEveryHeadAndPassesBodiesByteForByte(chunk: Int) throws {
        let (heads, passed) = try scan(Self.pipeline, chunk: chunk)
        #expect(heads == ["/1", "/2", "/3", "/4", "/5"])
        #expect(passed == ["</1>", "hello", "</2>", "3\r\nabc\r\n2;ext=1\r\n\nx\r\n0\r\nTrailer: t\r\n\r\n", "</3>", "</4>", "</5>", "\n\n"])
    }

    @Test func anUpgradeTurnsTheRestRaw() throws {
        let input = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{1}\u{2}GET /x HTTP/1.1\r\n\r\n"
        for chunk in [1, 5, 1000] {
            let (heads, passed) = try scan(input, chunk: chunk)
            #expect(heads == ["/ws"])
            #expect(passed.dropFirst().joined() == "\u{1}\u{2}GET /x HTTP/1.1\r\n\r\n")
        }
    }

    @Test func headsAreBoundedAndMalformedInputRefused() throws {
        let big = "GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "y", count: 2000))\r\n\r\n"
        #expect(throws: HTTPRequestStreamScanner.Failure.headTooLarge) { try scan(big, chunk: 100, limit: 1024) }
        #expect(throws: HTTPRequestStreamScanner.Failure.headTooLarge) { try scan(String(repeating: "G", count: 2000), chunk: 5000, limit: 1024) }
        _ = try scan(big, chunk: 100, limit: 4096)
        for bad in ["NOT HTTP\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                    "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"] {
            #expect(throws: HTTPRequestStreamScanner.Failure.self, "\(bad)") { try scan(bad, chunk: 1000) }
        }
    }

    @Test func contentLengthWithChunkedFollowsTheDecoder() throws {
        // Whatever llhttp makes of both headers (refusal, or chunked), the scanner agrees with it:
        // nothing after the chunked end is passed as body.
        let input = "POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            + "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        do {
            let (heads, _) = try scan(input, chunk: 1000)
            #expect(heads == ["/s", "/smuggled"])
        } catch {
            #expect(error as? HTTPRequestStreamScanner.Failure == .malformed)
        }
    }

    @Test func largeBodiesPassInFewSlices() throws {
        let scanner = HTTPRequestStreamScanner()
        var events = try scanner.feed(ByteBuffer(string: "PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"))
        #expect(events.count == 1)
        let block = ByteBuffer(repeating: UInt8(ascii: "\n"), count: 100_000)
        for _ in 0..<10 {
            events = try scanner.feed(block)
            #expect(events.count == 1)
        }
        #expect(scanner.isReadingHead)
    }
}
