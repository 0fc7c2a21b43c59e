import Testing

@testable import EgressProxy

@Suite struct ProxyLineTests {
    @Test func parsesOpenLines() throws {
        #expect(try ProxyLine.parseOpen(Array("OPEN example.com 443".utf8)) == .init(host: "example.com", port: 443))
        #expect(try ProxyLine.parseOpen(Array("OPEN Example.COM. 80\r".utf8)) == .init(host: "example.com", port: 80))
        #expect(try ProxyLine.parseOpen(Array("OPEN 127.0.0.1 8080".utf8)) == .init(host: "127.0.0.1", port: 8080))
        #expect(try ProxyLine.parseOpen(Array("OPEN ::1 22".utf8)) == .init(host: "::1", port: 22))
        #expect(try ProxyLine.parseOpen(Array("OPEN [2001:db8::1] 22".utf8)) == .init(host: "2001:db8::1", port: 22))
    }

    @Test(arguments: [
        "", "OPEN", "OPEN host", "OPEN  host 80", "OPEN host 80 extra", "open host 80", "OPEN host 0", "OPEN host 65536",
        "OPEN host 080", "OPEN host +80", "OPEN host -1", "OPEN host 8o", "OPEN ho st 80", "OPEN a..b 80", "OPEN ::g 80",
        "OPEN [::1 80", "OPEN ho\u{0}st 80", "OPEN host\t80", "OPEN é.com 80", "GET / HTTP/1.1",
    ])
    func refusesMalformedOpenLines(_ line: String) {
        #expect(throws: ProxyLine.Malformed.self) { try ProxyLine.parseOpen(Array(line.utf8)) }
    }

    @Test func refusesTooLongLines() {
        let line = "OPEN " + String(repeating: "a", count: 600) + " 80"
        #expect(throws: ProxyLine.Malformed.tooLong) { try ProxyLine.parseOpen(Array(line.utf8)) }
        let longName = "OPEN " + String(repeating: "a.", count: 130) + "com 80"
        #expect(throws: ProxyLine.Malformed.badHost) { try ProxyLine.parseOpen(Array(longName.utf8)) }
    }

    @Test func openRoundTrips() throws {
        let line = Array(ProxyLine.open(host: "api.github.com", port: 443).utf8)
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(try ProxyLine.parseOpen(line.dropLast()) == .init(host: "api.github.com", port: 443))
    }

    @Test func parsesAnswers() {
        #expect(ProxyLine.parseAnswer(Array("OK".utf8)) == .ok)
        #expect(ProxyLine.parseAnswer(Array("OK\r".utf8)) == .ok)
        #expect(ProxyLine.parseAnswer(Array("ERR denied private address".utf8))
            == .error(code: .denied, rawCode: "denied", text: "private address"))
        #expect(ProxyLine.parseAnswer(Array("ERR busy".utf8)) == .error(code: .busy, rawCode: "busy", text: ""))
        #expect(ProxyLine.parseAnswer(Array("ERR weird_code x".utf8)) == .error(code: nil, rawCode: "weird_code", text: "x"))
        #expect(ProxyLine.parseAnswer(Array("ERR ".utf8)) == .malformed)
        #expect(ProxyLine.parseAnswer(Array("ERR Denied x".utf8)) == .malformed)
        #expect(ProxyLine.parseAnswer(Array("OKAY".utf8)) == .malformed)
        #expect(ProxyLine.parseAnswer(Array("HTTP/1.1 200 OK".utf8)) == .malformed)
    }

    @Test func errorLinesRoundTripAndStayBounded() {
        for code in ProxyErrorCode.serverCodes {
            let line = Array(ProxyLine.error(code, "because\nof \u{7}things").utf8)
            #expect(line.last == UInt8(ascii: "\n"))
            #expect(line.dropLast().allSatisfy { $0 >= 0x20 })
            if case .error(let parsed, _, let text) = ProxyLine.parseAnswer(line.dropLast()) {
                #expect(parsed == code)
                #expect(text == "because of  things")
            } else {
                Issue.record("not an error line")
            }
        }
        let long = ProxyLine.error(.dialFailed, String(repeating: "é", count: 1000))
        #expect(long.utf8.count <= ProxyDefaults.maximumLineLength)
    }

    @Test func statusMapping() {
        #expect(ProxyErrorCode.denied.httpStatus == 403)
        #expect(ProxyErrorCode.dnsFailed.httpStatus == 502)
        #expect(ProxyErrorCode.dialFailed.httpStatus == 502)
        #expect(ProxyErrorCode.timeout.httpStatus == 504)
        #expect(ProxyErrorCode.circuitOpen.httpStatus == 503)
        #expect(ProxyErrorCode.busy.httpStatus == 503)
        #expect(ProxyErrorCode.tunnelDown.httpStatus == 503)
        #expect(ProxyErrorCode.badRequest.httpStatus == 400)
        #expect(ProxyErrorCode.badAnswer.httpStatus == 502)
    }

    @Test func errorResponseCarriesTheCode() {
        let text = String(decoding: ProxyErrorResponse.bytes(.circuitOpen, detail: "x\r\ny"), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(text.contains("\r\nX-Zrc-Proxy-Error: circuit_open\r\n"))
        #expect(text.hasSuffix("\r\n\r\ncircuit_open: xy\n"))
        #expect(text.contains("Content-Length: 17\r\n"))
    }
}

@Suite struct ProxyLineBufferTests {
    @Test func collectsALineAcrossChunks() {
        var buffer = ProxyLineBuffer(limit: 32)
        #expect(buffer.append(Array("OPEN exa".utf8)) == .needMore)
        #expect(buffer.append(Array("mple.com 80\nrest".utf8)) == .line(Array("OPEN example.com 80".utf8), leftover: Array("rest".utf8)))
        #expect(buffer.append(Array("more".utf8)) == .finished)
    }

    @Test func enforcesTheLimitWithAndWithoutNewline() {
        var a = ProxyLineBuffer(limit: 8)
        #expect(a.append(Array("12345678".utf8)) == .tooLong)
        var b = ProxyLineBuffer(limit: 8)
        #expect(b.append(Array("123456\n".utf8)) == .line(Array("123456".utf8), leftover: []))
        var c = ProxyLineBuffer(limit: 8)
        #expect(c.append(Array("1234567\n".utf8)) == .line(Array("1234567".utf8), leftover: []))
        var d = ProxyLineBuffer(limit: 8)
        #expect(d.append(Array("12345678\n".utf8)) == .tooLong)
        var e = ProxyLineBuffer(limit: 8)
        #expect(e.append(Array("1234".utf8)) == .needMore)
        #expect(e.append(Array("5678".utf8)) == .tooLong)
    }

    @Test func byteByByte() {
        var buffer = ProxyLineBuffer()
        let input = Array("OK\nX".utf8)
        var results: [ProxyLineBuffer.Result] = []
        for byte in input { results.append(buffer.append([byte])) }
        #expect(results == [.needMore, .needMore, .line(Array("OK".utf8), leftover: []), .finished])
    }
}
