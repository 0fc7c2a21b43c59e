import NIOCore
import NIOHTTP1
import ReverseTunnel

/// The parsers of named tunnels (DESIGN §11): the public side's request-head scanner (NIOHTTP1's
/// decoder fed in boundary-exact slices), the response observer, the named hello and its
/// answer, the tokens file, and `Host` routing.
///
/// Input: `selector u8 | chunkSeed u8 | stream`. `selector % 5` picks the parser:
/// 0. request scanner — properties: the outcome does not depend on how the stream is split
///    (whole vs `chunkSeed` chunks); every head re-serialised by `ForwardedHead` scans back to
///    the same head; passed bytes never exceed the input;
/// 1. response observer — never traps (statuses are three digits, 000 included);
/// 2. hello — `parse` never traps; a parsed name is valid; the client's own line for a parsed
///    request parses back to it (when it has a name and its token is not `-`); `parseAnswer`
///    of `accepted(url)`/`denied(r)` gives them back;
/// 3. tokens file — a parsed table, written back as `name token` lines, parses to itself;
/// 4. `Host` routing — a routed name, put back under the domain, routes to itself.
public enum NamedTunnelFuzzTarget {
    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let selector = input.u8() % 5
        let chunkSeed = input.u8()
        let stream = input.rest()
        switch selector {
        case 0: scanner(stream, chunkSeed: chunkSeed)
        case 1:
            let requests = [HTTPRequestHead(version: .http1_1, method: chunkSeed & 1 == 0 ? .GET : .HEAD, uri: "/")]
            for status in TunnelFuzzHooks.observeResponses(FuzzChunks.split(stream, seed: chunkSeed), requests: requests) {
                fuzzCheck((0...999).contains(status), "status \(status)")  // llhttp takes any three digits
            }
        case 2: hello(Array(stream))
        case 3: tokensFile(Array(stream))
        default: host(String(decoding: stream, as: UTF8.self))
        }
    }

    static func scanner(_ stream: ArraySlice<UInt8>, chunkSeed: UInt8) {
        let limit = 4096
        let whole = TunnelFuzzHooks.scanRequests([stream], maximumHeadLength: limit)
        let split = TunnelFuzzHooks.scanRequests(FuzzChunks.split(stream, seed: chunkSeed), maximumHeadLength: limit)
        fuzzCheck(whole.failed == split.failed, "failure depends on the split")
        fuzzCheck(whole.passed.count <= stream.count, "passed more than the input")
        if !whole.failed {
            fuzzCheck(whole.passed == split.passed, "passed bytes depend on the split")
            fuzzCheck(whole.heads == split.heads, "heads depend on the split")
        }
        for head in whole.heads.prefix(4) {
            var buffer = ByteBuffer()
            ForwardedHead.serialize(head, into: &buffer)
            let again = TunnelFuzzHooks.scanRequests([ArraySlice(buffer.readableBytesView)], maximumHeadLength: 1 << 20)
            fuzzCheck(!again.failed && again.heads.first == head, "a re-serialised head does not scan back")
        }
    }

    static func hello(_ line: [UInt8]) {
        if case .request(let request) = NamedTunnelHello.parse(line: line) {
            if let name = request.name { fuzzCheck(TunnelName(name.rawValue) == name, "invalid name accepted") }
            if let name = request.name, let token = request.token, !token.contains(UInt8(ascii: " ")) {
                let text = String(decoding: token, as: UTF8.self)
                if Array(text.utf8) == token {
                    let again = NamedTunnelHello.parse(line: Array(NamedTunnelHello.request(name: name.rawValue, token: text).utf8.dropLast()))
                    fuzzCheck(again == .request(request), "hello does not round-trip")
                }
            }
        }
        let url = String(decoding: line.filter { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }, as: UTF8.self)
        if !url.isEmpty {
            let ok = NamedTunnelHello.accepted(publicURL: url)
            fuzzCheck(NamedTunnelHello.parseAnswer(Array(ok.utf8.dropLast())) == .accepted(url: url), "OK does not round-trip")
        }
        _ = NamedTunnelHello.parseAnswer(line)
    }

    static func tokensFile(_ bytes: [UInt8]) {
        guard let table = try? TunnelTokensFileParser.parse(bytes) else { return }
        var text: [UInt8] = []
        for (name, token) in table.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            text += Array(name.rawValue.utf8) + [UInt8(ascii: " ")] + token + [UInt8(ascii: "\n")]
        }
        fuzzCheck((try? TunnelTokensFileParser.parse(text)) == table, "tokens file does not round-trip")
    }

    static func host(_ text: String) {
        let router = TunnelHostRouter(domain: "t.test")
        if case .name(let name) = router.route(host: text) {
            fuzzCheck(router.route(host: "\(name).t.test:80") == .name(name), "routed name does not route back")
        }
        _ = router.route(serverName: text)
    }

    public static func seeds() -> [[UInt8]] {
        func seed(_ selector: UInt8, _ chunkSeed: UInt8, _ text: String) -> [UInt8] { [selector, chunkSeed] + Array(text.utf8) }
        return [
            seed(0, 3, "POST /1 HTTP/1.1\r\nHost: a.t.test\r\nContent-Length: 5\r\n\r\nhelloGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
            seed(0, 1, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.0\r\n\r\n"),
            seed(0, 7, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{81}\u{5}hello"),
            seed(0, 9, "GET / HTTP/1.1\r\nX: " + String(repeating: "y", count: 5000) + "\r\n\r\n"),
            seed(1, 2, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            seed(1, 1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
            seed(2, 0, "HELLO app tok"), seed(2, 0, "HELLO * -"), seed(2, 0, "HELLO tok"), seed(2, 0, "HELLO Bad_Name x"),
            seed(2, 0, "OK http://app.t.test:8080/"), seed(2, 0, "DENIED bad token"),
            seed(3, 0, "# tokens\nalpha tok-a\nbeta\ttok-b # c\n\n"), seed(3, 0, "alpha\n"),
            seed(4, 0, "App.T.Test:8080"), seed(4, 0, "[::1]:80"), seed(4, 0, "a_b.t.test"), seed(4, 0, "x.y.t.test."),
        ]
    }
}
