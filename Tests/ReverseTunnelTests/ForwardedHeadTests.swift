import NIOCore
import NIOHTTP1
@testable import ReverseTunnel
import Testing

@Suite struct ForwardedHeadTests {
    @Test func replacesForgedHeadersAndKeepsTheRestInOrder() {
        var headers = HTTPHeaders([
            ("Host", "App.t.test:8080"), ("x-forwarded-for", "6.6.6.6"), ("Accept", "*/*"), ("X-Forwarded-Proto", "gopher"),
            ("X-FORWARDED-HOST", "evil"), ("X-Custom", "1"),
        ])
        ForwardedHead.rewrite(&headers, clientAddress: "10.0.0.7", proto: "http")
        #expect(Array(headers.map { "\($0.name): \($0.value)" }) == [
            "Host: App.t.test:8080", "Accept: */*", "X-Custom: 1",
            "X-Forwarded-For: 10.0.0.7", "X-Forwarded-Host: App.t.test:8080", "X-Forwarded-Proto: http",
        ])
    }

    @Test func serializesTheHead() {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/a?b=c")
        head.headers.add(name: "Host", value: "x")
        head.headers.add(name: "Content-Length", value: "3")
        var buffer = ByteBuffer()
        ForwardedHead.serialize(head, into: &buffer)
        #expect(String(buffer: buffer) == "POST /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
        let head10 = HTTPRequestHead(version: .http1_0, method: .GET, uri: "/")
        buffer.clear()
        ForwardedHead.serialize(head10, into: &buffer)
        #expect(String(buffer: buffer) == "GET / HTTP/1.0\r\n\r\n")
    }

    @Test func upgradesAndPaths() {
        var ws = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ws")
        ws.headers.add(name: "Upgrade", value: "websocket")
        ws.headers.add(name: "Connection", value: "keep-alive, Upgrade")
        #expect(ForwardedHead.isUpgrade(ws))
        ws.headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        #expect(!ForwardedHead.isUpgrade(ws))
        #expect(ForwardedHead.isUpgrade(HTTPRequestHead(version: .http1_1, method: .CONNECT, uri: "h:443")))
        #expect(ForwardedHead.pathWithoutQuery("/a/b?token=secret") == "/a/b")
        #expect(ForwardedHead.pathWithoutQuery("/a#frag") == "/a")
        #expect(ForwardedHead.pathWithoutQuery(String(repeating: "a", count: 2000)).count == 512)
    }

    @Test func errorResponsesAreShortPlainText() {
        for error in [TunnelHTTPError.missingHost, .unknownTunnel, .requestTimeout, .misdirected, .headTooLarge, .noClient,
                      .localUnreachable, .responseTimeout] {
            let text = String(buffer: error.response())
            #expect(text.hasPrefix("HTTP/1.1 \(error.status) "))
            #expect(text.contains("Content-Type: text/plain; charset=utf-8\r\n"))
            #expect(text.contains("Connection: close\r\n"))
            #expect(text.hasSuffix("\r\n\r\n\(error.message)\n"))
            #expect(text.contains("Content-Length: \(error.message.utf8.count + 1)\r\n"))
        }
    }
}
