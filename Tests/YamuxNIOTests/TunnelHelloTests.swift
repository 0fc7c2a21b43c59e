import ReverseTunnel
import Testing

@Suite struct TunnelHelloTests {
    @Test func requestCarriesTheToken() {
        #expect(TunnelHello.request(token: "s3cret") == "HELLO s3cret\n")
        #expect(TunnelHello.request(token: nil) == "HELLO\n")
    }

    @Test func serverWithoutTokenAcceptsAnyHello() {
        #expect(TunnelHello.check(line: Array("HELLO".utf8), expectedToken: nil) == .accepted)
        #expect(TunnelHello.check(line: Array("HELLO whatever\r".utf8), expectedToken: nil) == .accepted)
    }

    @Test func tokenMustMatchExactly() {
        #expect(TunnelHello.check(line: Array("HELLO s3cret".utf8), expectedToken: "s3cret") == .accepted)
        #expect(TunnelHello.check(line: Array("HELLO s3cre".utf8), expectedToken: "s3cret") == .denied("bad token"))
        #expect(TunnelHello.check(line: Array("HELLO s3crett".utf8), expectedToken: "s3cret") == .denied("bad token"))
        #expect(TunnelHello.check(line: Array("HELLO".utf8), expectedToken: "s3cret") == .denied("bad token"))
    }

    @Test func garbageIsRefused() {
        #expect(TunnelHello.check(line: Array("GET / HTTP/1.1".utf8), expectedToken: nil) == .denied("expected HELLO"))
        #expect(TunnelHello.check(line: Array("HELLOX".utf8), expectedToken: nil) == .denied("expected HELLO"))
        #expect(TunnelHello.check(line: [], expectedToken: nil) == .denied("expected HELLO"))
    }

    @Test func answersRoundTrip() {
        #expect(TunnelHello.refusal(inAnswer: Array("OK".utf8)) == nil)
        #expect(TunnelHello.refusal(inAnswer: Array("DENIED bad token".utf8)) == "bad token")
        #expect(TunnelHello.refusal(inAnswer: Array("???".utf8))?.hasPrefix("unexpected answer") == true)
    }
}
