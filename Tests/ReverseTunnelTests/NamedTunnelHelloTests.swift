@testable import ReverseTunnel
import Testing

@Suite struct NamedTunnelHelloTests {
    private func parse(_ text: String) -> NamedTunnelHello.Parsed { NamedTunnelHello.parse(line: Array(text.utf8)) }
    private func request(_ name: String?, _ token: String?) -> NamedTunnelHello.Parsed {
        .request(.init(name: name.flatMap { TunnelName($0) }, token: token.map { Array($0.utf8) }))
    }

    @Test func forms() {
        #expect(parse("HELLO") == request(nil, nil))
        #expect(parse("HELLO tok") == request(nil, "tok"))
        #expect(parse("HELLO app tok") == request("app", "tok"))
        #expect(parse("HELLO app tok\r") == request("app", "tok"))
        #expect(parse("HELLO app -") == request("app", nil))
        #expect(parse("HELLO * tok") == request(nil, "tok"))
        #expect(parse("HELLO * -") == request(nil, nil))
    }

    @Test func refusals() {
        #expect(parse("HELLO Bad_Name tok") == .refused("bad name: only a-z, 0-9 and - are allowed"))
        #expect(parse("HELLO -app tok") == .refused("bad name: must not start or end with -"))
        #expect(parse("HELLO a b c") == .refused("malformed hello"))
        #expect(parse("HELLO  tok") == .refused("malformed hello"))
        #expect(parse("HELLO app ") == .refused("malformed hello"))
        #expect(parse("HELLOX") == .refused("expected HELLO"))
        #expect(parse("GET / HTTP/1.1") == .refused("expected HELLO"))
        #expect(parse("") == .refused("expected HELLO"))
    }

    @Test func clientLinesRoundTrip() {
        #expect(NamedTunnelHello.request(name: "app", token: "tok") == "HELLO app tok\n")
        #expect(NamedTunnelHello.request(name: "app", token: nil) == "HELLO app -\n")
        #expect(NamedTunnelHello.request(name: nil, token: "tok") == "HELLO tok\n")
        #expect(NamedTunnelHello.request(name: nil, token: nil) == "HELLO\n")
        for (name, token) in [("app", "tok"), ("x-1", nil)] as [(String, String?)] {
            let line = Array(NamedTunnelHello.request(name: name, token: token).utf8.dropLast())
            #expect(NamedTunnelHello.parse(line: line) == request(name, token))
        }
        // The plain server (DESIGN §9) still understands a nameless client's line.
        #expect(TunnelHello.check(line: Array(NamedTunnelHello.request(name: nil, token: "tok").utf8.dropLast()), expectedToken: "tok") == .accepted)
    }

    @Test func answers() {
        let ok = Array(NamedTunnelHello.accepted(publicURL: "http://app.t.test:8080/").utf8.dropLast())
        #expect(NamedTunnelHello.parseAnswer(ok) == .accepted(url: "http://app.t.test:8080/"))
        #expect(NamedTunnelHello.parseAnswer(Array("OK".utf8)) == .accepted(url: nil))
        let denied = Array(NamedTunnelHello.denied("bad\ntoken").utf8.dropLast())
        #expect(NamedTunnelHello.parseAnswer(denied) == .denied("bad token"))
        #expect(NamedTunnelHello.parseAnswer(Array("OK ".utf8)) == .malformed("empty URL"))
        if case .malformed = NamedTunnelHello.parseAnswer(Array("REPLACED".utf8)) {} else { Issue.record("REPLACED is not an answer") }
    }
}
