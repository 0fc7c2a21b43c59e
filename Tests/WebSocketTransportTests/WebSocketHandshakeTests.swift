import NIOHTTP1
import NIOWebSocket
import Testing
@testable import WebSocketTransport

@Suite struct WebSocketHandshakeTests {
    func head(_ uri: String = "/zrc-relay/v1", method: HTTPMethod = .GET, version: HTTPVersion = .http1_1,
              _ fields: [(String, String)]? = nil) -> HTTPRequestHead {
        let defaults = [("Host", "relay:443"), ("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"),
                        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
                        ("Sec-WebSocket-Protocol", "chat, zrc-relay.v1")]
        return HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(fields ?? defaults))
    }

    func without(_ name: String) -> [(String, String)] {
        [("Host", "relay:443"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
         ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
         ("Sec-WebSocket-Protocol", "zrc-relay.v1")].filter { $0.0 != name }
    }

    @Test func acceptIsRFC6455sExample() {
        #expect(WebSocketHandshake.accept(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func aGoodUpgradeIsAccepted() {
        #expect(WebSocketHandshake.evaluate(head(), path: "/zrc-relay/v1") == .upgrade(accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
        #expect(WebSocketHandshake.evaluate(head("/zrc-relay/v1?x=1"), path: "/zrc-relay/v1") == .upgrade(accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
    }

    func status(_ decision: WebSocketHandshake.ServerDecision) -> UInt? {
        if case .refuse(let status, _) = decision { return status.code }
        return nil
    }

    @Test func refusalsCarryTheDocumentedStatus() {
        let path = "/zrc-relay/v1"
        #expect(status(WebSocketHandshake.evaluate(head("/other"), path: path)) == 404)
        #expect(status(WebSocketHandshake.evaluate(head(path, without("Upgrade")), path: path)) == 426)
        #expect(status(WebSocketHandshake.evaluate(head(path, without("Sec-WebSocket-Version")), path: path)) == 426)
        var v8 = without("Sec-WebSocket-Version")
        v8.append(("Sec-WebSocket-Version", "8"))
        let refusal = WebSocketHandshake.evaluate(head(path, v8), path: path)
        #expect(status(refusal) == 426)
        #expect(refusal.extraHeaders.first?.1 == "13")
        #expect(status(WebSocketHandshake.evaluate(head(path, without("Sec-WebSocket-Protocol")), path: path)) == 400)
        var wrong = without("Sec-WebSocket-Protocol")
        wrong.append(("Sec-WebSocket-Protocol", "zrc-relay.v2"))
        #expect(status(WebSocketHandshake.evaluate(head(path, wrong), path: path)) == 400)
        #expect(status(WebSocketHandshake.evaluate(head(path, without("Sec-WebSocket-Key")), path: path)) == 400)
        var shortKey = without("Sec-WebSocket-Key")
        shortKey.append(("Sec-WebSocket-Key", "c2hvcnQ="))
        #expect(status(WebSocketHandshake.evaluate(head(path, shortKey), path: path)) == 400)
        #expect(status(WebSocketHandshake.evaluate(head(path, without("Connection")), path: path)) == 400)
        #expect(status(WebSocketHandshake.evaluate(head(path, method: .POST), path: path)) == 400)
        #expect(status(WebSocketHandshake.evaluate(head(path, version: .http1_0), path: path)) == 400)
    }

    @Test func theClientChecksTheServersAnswer() {
        let key = WebSocketHandshake.makeKey()
        #expect(WebSocketHandshake.decodedLength(ofBase64: key) == 16)
        let good = WebSocketHandshake.switchingProtocols(accept: WebSocketHandshake.accept(forKey: key))
        #expect(WebSocketHandshake.problem(with: good, key: key) == nil)
        #expect(WebSocketHandshake.problem(with: good, key: WebSocketHandshake.makeKey()) != nil)
        var noProtocol = good
        noProtocol.headers.remove(name: "Sec-WebSocket-Protocol")
        #expect(WebSocketHandshake.problem(with: noProtocol, key: key) != nil)
        #expect(WebSocketHandshake.problem(with: HTTPResponseHead(version: .http1_1, status: .forbidden), key: key) != nil)
    }
}

@Suite struct WebSocketMessageRulesTests {
    @Test func binaryMessagesInAnySplitPass() {
        var rules = WebSocketMessageRules(frameSender: .client)
        #expect(rules.judge(opcode: .binary, fin: false, length: 10, masked: true) == .data)
        #expect(rules.judge(opcode: .ping, fin: true, length: 4, masked: true) == .control)
        #expect(rules.judge(opcode: .continuation, fin: true, length: 10, masked: true) == .data)
        #expect(rules.judge(opcode: .binary, fin: true, length: 0, masked: true) == .data)
    }

    @Test func aMessageOverOneMebibyteCloses1009() {
        var rules = WebSocketMessageRules(frameSender: .client)
        #expect(rules.judge(opcode: .binary, fin: false, length: 1 << 19, masked: true) == .data)
        #expect(rules.judge(opcode: .continuation, fin: false, length: 1 << 19, masked: true) == .data)
        guard case .close(let code, _) = rules.judge(opcode: .continuation, fin: true, length: 1, masked: true) else {
            Issue.record("not closed")
            return
        }
        #expect(code == .messageTooLarge)
    }

    @Test func otherFramesClose() {
        func code(_ steps: [(WebSocketOpcode, Bool, Int, Bool)], sender: WebSocketMessageRules.Sender = .client,
                  reserved: Bool = false) -> WebSocketErrorCode? {
            var rules = WebSocketMessageRules(frameSender: sender)
            for (index, step) in steps.enumerated() {
                if case .close(let code, _) = rules.judge(opcode: step.0, fin: step.1, length: step.2, masked: step.3,
                                                          reservedBits: reserved && index == steps.count - 1) {
                    return code
                }
            }
            return nil
        }
        #expect(code([(.text, true, 3, true)]) == .unacceptableData)
        #expect(code([(.binary, true, 3, false)]) == .protocolError)
        #expect(code([(.binary, true, 3, true)], sender: .server) == .protocolError)
        #expect(code([(.binary, true, 3, false)], sender: .server) == nil)
        #expect(code([(.continuation, true, 3, true)]) == .protocolError)
        #expect(code([(.binary, false, 3, true), (.binary, true, 3, true)]) == .protocolError)
        #expect(code([(.ping, false, 3, true)]) == .protocolError)
        #expect(code([(.ping, true, 126, true)]) == .protocolError)
        #expect(code([(.binary, true, 3, true)], reserved: true) == .protocolError)
    }
}

@Suite struct WebSocketAddressAndProxyTests {
    @Test func addressesParse() {
        #expect(WebSocketAddress(parsing: "wss://relay.example.com:8443/zrc-relay/v1") ==
                WebSocketAddress(tls: true, host: "relay.example.com", port: 8443, path: "/zrc-relay/v1"))
        #expect(WebSocketAddress(parsing: "ws://127.0.0.1/x") == WebSocketAddress(tls: false, host: "127.0.0.1", port: 80, path: "/x"))
        #expect(WebSocketAddress(parsing: "WSS://[::1]") == WebSocketAddress(tls: true, host: "::1", port: 443, path: "/"))
        #expect(WebSocketAddress(parsing: "wss://[::1]:4433/p")?.authority == "[::1]:4433")
        for bad in ["https://h/p", "wss://", "wss://h:0/", "wss://h:70000/", "wss://u@h/", "wss://h/p#f", "wss://::1/", "relay:443"] {
            #expect(WebSocketAddress(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test func proxiesParseAndNoProxyExcludes() throws {
        #expect(HTTPProxy(parsing: "http://proxy:3128") == HTTPProxy(host: "proxy", port: 3128))
        #expect(HTTPProxy(parsing: "http://proxy/") == HTTPProxy(host: "proxy", port: 80))
        #expect(HTTPProxy(parsing: "127.0.0.1:8080") == HTTPProxy(host: "127.0.0.1", port: 8080))
        #expect(HTTPProxy(parsing: "http://u%40x:p@proxy:1")?.authorization == "Basic dUB4OnA=")
        #expect(HTTPProxy(parsing: "http://u:p@proxy:1")?.description == "http://proxy:1")
        #expect(HTTPProxy(parsing: "socks5://proxy:1") == nil)
        #expect(HTTPProxy(parsing: "proxy") == nil)
        let env = ["HTTPS_PROXY": "http://p:3128", "NO_PROXY": "localhost,.internal, example.org:443"]
        #expect(try HTTPProxy.choose(explicit: nil, environment: env, targetHost: "relay.example.com")?.port == 3128)
        #expect(try HTTPProxy.choose(explicit: nil, environment: env, targetHost: "a.internal") == nil)
        #expect(try HTTPProxy.choose(explicit: nil, environment: env, targetHost: "www.example.org") == nil)
        #expect(try HTTPProxy.choose(explicit: nil, environment: env, targetHost: "localhost") == nil)
        #expect(try HTTPProxy.choose(explicit: "none", environment: env, targetHost: "relay") == nil)
        #expect(try HTTPProxy.choose(explicit: "http://q:1", environment: env, targetHost: "a.internal")?.host == "q")
        #expect(try HTTPProxy.choose(explicit: nil, environment: ["https_proxy": "http://p:1", "no_proxy": "*"], targetHost: "x") == nil)
        #expect(throws: HTTPProxyError.self) { try HTTPProxy.choose(explicit: "ftp://x", environment: [:], targetHost: "x") }
        #expect(try HTTPProxy.choose(explicit: nil, environment: [:], targetHost: "x") == nil)
    }
}
