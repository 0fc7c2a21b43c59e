import Testing

@testable import EgressProxy

@Suite struct HTTPResponseHeadFilterTests {
    func run(_ chunks: [String]) -> String {
        var filter = HTTPResponseHeadFilter()
        var out: [UInt8] = []
        for chunk in chunks { out += filter.process(Array(chunk.utf8)) }
        out += filter.drain()
        return String(decoding: out, as: UTF8.self)
    }

    @Test func dropsHopByHopAndProxyHeadersAndSaysClose() {
        let response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n"
            + "Proxy-Authenticate: Basic\r\nX-Kept: yes\r\n\r\nhello"
        let expected = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kept: yes\r\nConnection: close\r\n\r\nhello"
        #expect(run([response]) == expected)
        // Any split gives the same bytes.
        let bytes = Array(response)
        for cut in 0...bytes.count {
            #expect(run([String(bytes[0..<cut]), String(bytes[cut...])]) == expected, "cut at \(cut)")
        }
    }

    @Test func interimResponsesThenTheFinalOne() {
        let out = run(["HTTP/1.1 100 Continue\r\nConnection: x\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"])
        #expect(out == "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n")
    }

    @Test func upgradeKeepsItsHeadersAndBytesAfter() {
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"
        #expect(run([head + "\u{81}\u{02}hi"]) == head + "\u{81}\u{02}hi")
    }

    @Test func bodyBytesThatLookLikeHeadsPassUntouched() {
        let out = run(["HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n", "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n"])
        #expect(out.hasSuffix("\r\n\r\nHTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n"))
    }

    @Test func notAResponsePassesUntouched() {
        #expect(run(["SSH-2.0-OpenSSH\r\n\r\n"]) == "SSH-2.0-OpenSSH\r\n\r\n")
        #expect(run(["HTTP/1.1 2x0 Odd\r\nA: b\r\n\r\nbody"]) == "HTTP/1.1 2x0 Odd\r\nA: b\r\n\r\nbody")
        #expect(run(["HTTP/1.1 200 OK\r\nno colon\r\n\r\nbody"]) == "HTTP/1.1 200 OK\r\nno colon\r\n\r\nbody")
        #expect(run(["HT", "TP/1.0 204 No Content\r\n\r\n"]) == "HTTP/1.0 204 No Content\r\nConnection: close\r\n\r\n")
        #expect(run(["HTTP/1.1 200 OK\r\nA: b"]) == "HTTP/1.1 200 OK\r\nA: b")
    }

    @Test func boundsWhatItHolds() {
        var filter = HTTPResponseHeadFilter(limit: 64)
        #expect(filter.process(Array("HTTP/1.1 200 OK\r\n".utf8)).isEmpty)
        let big = Array(("X: " + String(repeating: "y", count: 100) + "\r\n").utf8)
        #expect(filter.process(big).count == 17 + big.count)
        #expect(filter.isPassingThrough)
    }
}
