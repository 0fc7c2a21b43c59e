import Testing

@testable import EgressProxy

@Suite struct HTTPRequestHeadParserTests {
    func parse(_ text: String, limit: Int = ProxyDefaults.maximumRequestHeadLength) -> HTTPRequestHeadParser.Result {
        var parser = HTTPRequestHeadParser(limit: limit)
        return parser.append(Array(text.utf8))
    }

    @Test func readsAHeadAndKeepsTheBody() throws {
        guard case .head(let head, let leftover) = parse("POST http://h/x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody") else {
            Issue.record("no head")
            return
        }
        #expect(head.method == "POST")
        #expect(head.target == "http://h/x")
        #expect(head.headers == [HTTPHeader("Host", "h"), HTTPHeader("Content-Length", "4")])
        #expect(leftover == Array("body".utf8))
    }

    @Test func acceptsBareLineFeedsAndSplitsAnywhere() {
        let text = "GET http://h/ HTTP/1.0\nA:  b \n\nrest"
        for split in 0...(text.utf8.count - 5) {
            var parser = HTTPRequestHeadParser()
            let bytes = Array(text.utf8)
            var result = parser.append(bytes[0..<split])
            if result == .needMore { result = parser.append(bytes[split...]) }
            #expect(result == .head(HTTPRequestHead(method: "GET", target: "http://h/", version: "HTTP/1.0", headers: [HTTPHeader("A", "b")]),
                                    leftover: Array("rest".utf8)), "split at \(split)")
        }
    }

    @Test(arguments: [
        "GET http://h/ HTTP/2\r\n\r\n", "GET  http://h/ HTTP/1.1\r\n\r\n", "GET http://h/\r\n\r\n", "G(T http://h/ HTTP/1.1\r\n\r\n",
        "GET http://h/ HTTP/1.1\r\n folded\r\n\r\n", "GET http://h/ HTTP/1.1\r\nNoColon\r\n\r\n", "GET http://h/ HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET http://h/ HTTP/1.1\r\nA: \u{1}\r\n\r\n", "\r\n\r\n",
    ])
    func refusesMalformedHeads(_ text: String) {
        guard case .invalid = parse(text) else {
            Issue.record("accepted \(text.debugDescription)")
            return
        }
    }

    @Test func boundsTheHead() {
        #expect(parse(String(repeating: "a", count: 200), limit: 100) == .tooLarge)
        #expect(parse("GET http://h/ HTTP/1.1\r\nA: " + String(repeating: "a", count: 200) + "\r\n\r\n", limit: 100) == .tooLarge)
        var parser = HTTPRequestHeadParser(limit: 100)
        for _ in 0..<10 { _ = parser.append(Array(repeating: UInt8(ascii: "a"), count: 9)) }
        #expect(parser.append(Array(repeating: UInt8(ascii: "a"), count: 20)) == .tooLarge)
        let many = "GET http://h/ HTTP/1.1\r\n" + String(repeating: "A: b\r\n", count: 200) + "\r\n"
        guard case .invalid = parse(many) else {
            Issue.record("too many headers accepted")
            return
        }
    }
}

@Suite struct ProxyRequestPlanTests {
    func head(_ method: String, _ target: String, _ headers: [(String, String)] = []) -> HTTPRequestHead {
        HTTPRequestHead(method: method, target: target, version: "HTTP/1.1", headers: headers.map { HTTPHeader($0.0, $0.1) })
    }

    func forwarded(_ plan: ProxyRequestPlan) -> String {
        if case .forward(let bytes, _) = plan.mode { return String(decoding: bytes, as: UTF8.self) }
        return ""
    }

    @Test func connect() throws {
        #expect(try ProxyRequestPlan.plan(head("CONNECT", "example.com:443")) == .init(host: "example.com", port: 443, mode: .connect))
        #expect(try ProxyRequestPlan.plan(head("CONNECT", "[::1]:8443")) == .init(host: "::1", port: 8443, mode: .connect))
        for bad in ["example.com", "example.com:0", ":443", "[::1]", "a b:1", "x:y"] {
            #expect(throws: ProxyRequestPlan.Refusal.self) { try ProxyRequestPlan.plan(head("CONNECT", bad)) }
        }
    }

    @Test func absoluteFormIsRewrittenToOriginForm() throws {
        let plan = try ProxyRequestPlan.plan(head("PUT", "http://Example.com:8080/a/b?c=d#frag", [
            ("Host", "wrong"), ("Content-Length", "3"), ("Proxy-Authorization", "Basic x"), ("Proxy-Connection", "keep-alive"),
            ("Connection", "keep-alive, X-Secret"), ("X-Secret", "s"), ("Keep-Alive", "5"), ("TE", "trailers"), ("Accept", "*/*"),
        ]))
        #expect(plan.host == "example.com")
        #expect(plan.port == 8080)
        #expect(forwarded(plan) == "PUT /a/b?c=d HTTP/1.1\r\nHost: Example.com:8080\r\nContent-Length: 3\r\nAccept: */*\r\nConnection: close\r\n\r\n")
    }

    @Test func defaultsAndEmptyPaths() throws {
        let plan = try ProxyRequestPlan.plan(head("GET", "http://h.example"))
        #expect(plan.port == 80)
        #expect(forwarded(plan).hasPrefix("GET / HTTP/1.1\r\nHost: h.example\r\n"))
        #expect(forwarded(try ProxyRequestPlan.plan(head("GET", "http://h?q"))).hasPrefix("GET /?q HTTP/1.1\r\n"))
        #expect(try ProxyRequestPlan.plan(head("DELETE", "HTTP://[::1]:81/x")).host == "::1")
    }

    @Test(arguments: ["/relative", "https://h/", "ftp://h/", "http://user@h/", "http://h:0/", "http://h:x/", "http:///", "http://a b/"])
    func refusesTargets(_ target: String) {
        #expect(throws: ProxyRequestPlan.Refusal.self) { try ProxyRequestPlan.plan(head("GET", target)) }
    }

    @Test func refusesAmbiguousBodies() {
        #expect(throws: ProxyRequestPlan.Refusal.self) {
            try ProxyRequestPlan.plan(head("POST", "http://h/", [("Content-Length", "3"), ("Transfer-Encoding", "chunked")]))
        }
        #expect(throws: ProxyRequestPlan.Refusal.self) {
            try ProxyRequestPlan.plan(head("POST", "http://h/", [("Content-Length", "3"), ("Content-Length", "4")]))
        }
        #expect(throws: ProxyRequestPlan.Refusal.self) { try ProxyRequestPlan.plan(head("POST", "http://h/", [("Content-Length", "-1")])) }
        #expect(throws: Never.self) { try ProxyRequestPlan.plan(head("POST", "http://h/", [("Content-Length", "3"), ("Content-Length", "3")])) }
    }

    @Test func keepsChunkedFramingAndWebSocketUpgrade() throws {
        let chunked = try ProxyRequestPlan.plan(head("POST", "http://h/", [("Transfer-Encoding", "chunked"), ("Connection", "Transfer-Encoding")]))
        #expect(forwarded(chunked).contains("Transfer-Encoding: chunked\r\n"))
        let ws = try ProxyRequestPlan.plan(head("GET", "http://h/ws", [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "k"), ("Sec-WebSocket-Version", "13"),
        ]))
        guard case .forward(_, let isUpgrade) = ws.mode else { Issue.record("not forward"); return }
        #expect(isUpgrade)
        #expect(forwarded(ws) == "GET /ws HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        let notWs = try ProxyRequestPlan.plan(head("GET", "http://h/", [("Upgrade", "h2c"), ("Connection", "Upgrade")]))
        #expect(!forwarded(notWs).contains("Upgrade"))
    }
}
