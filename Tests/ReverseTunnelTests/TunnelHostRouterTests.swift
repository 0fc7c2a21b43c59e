@testable import ReverseTunnel
import Testing

@Suite struct TunnelHostRouterTests {
    let router = TunnelHostRouter(domain: "Tunnels.Example.com.")

    @Test func namesUnderTheDomain() {
        let app = TunnelName("app")!
        for host in ["app.tunnels.example.com", "APP.Tunnels.Example.COM", "app.tunnels.example.com:8080", "app.tunnels.example.com.",
                     "app.tunnels.example.com.:80", " app.tunnels.example.com "] {
            #expect(router.route(host: host) == .name(app), "\(host)")
        }
    }

    @Test func everythingElse() {
        #expect(router.route(host: nil) == .missing)
        #expect(router.route(host: "") == .missing)
        #expect(router.route(host: "  ") == .missing)
        #expect(router.route(host: "tunnels.example.com") == .otherHost)
        #expect(router.route(host: "a.b.tunnels.example.com") == .otherHost)
        #expect(router.route(host: "app.example.org") == .otherHost)
        #expect(router.route(host: "apptunnels.example.com") == .otherHost)
        #expect(router.route(host: "127.0.0.1:8080") == .otherHost)
        #expect(router.route(host: "[::1]:8080") == .otherHost)
        #expect(router.route(host: "app.tunnels.example.com:99999") == .malformed)
        #expect(router.route(host: "app.tunnels.example.com:") == .malformed)
        #expect(router.route(host: "app.tunnels.example.com:8x") == .malformed)
        #expect(router.route(host: "[::1") == .malformed)
        #expect(router.route(host: "a b.tunnels.example.com") == .malformed)
        #expect(router.route(host: "user@app.tunnels.example.com") == .malformed)
        #expect(router.route(host: "my_app.tunnels.example.com") == .badName(.invalidCharacter))
        #expect(router.route(host: "-app.tunnels.example.com") == .badName(.hyphenAtEdge))
    }

    @Test func serverNames() {
        #expect(router.route(serverName: "App.tunnels.example.com") == .name(TunnelName("app")!))
        #expect(router.route(serverName: "example.com") == .otherHost)
    }

    @Test func domains() {
        #expect(TunnelHostRouter.isValidDomain("tunnels.example.com"))
        #expect(TunnelHostRouter.isValidDomain("localhost"))
        #expect(!TunnelHostRouter.isValidDomain(""))
        #expect(!TunnelHostRouter.isValidDomain("a..b"))
        #expect(!TunnelHostRouter.isValidDomain("a_b.com"))
    }
}
