@testable import ReverseTunnel
import Testing

@Suite struct TunnelRegistryTests {
    let t0 = ContinuousClock.now
    let app = TunnelName("app")!
    let tok = Array("tok".utf8)

    @Test func claimRouteReleaseHoldExpire() {
        var registry = TunnelRegistry<Int>()
        #expect(registry.route(app, now: t0) == .unknown)
        #expect(registry.claim(app, token: tok, client: 1, now: t0) == .accepted(replaced: nil))
        #expect(registry.route(app, now: t0) == .client(1))
        #expect(registry.activeCount == 1)
        #expect(registry.release(app, client: 1, now: t0) == .held(until: t0 + .seconds(30)))
        #expect(registry.activeCount == 0)
        #expect(registry.route(app, now: t0 + .seconds(29)) == .noClient)
        #expect(registry.isTaken(app, now: t0 + .seconds(29)))
        #expect(registry.nextExpiry == t0 + .seconds(30))
        #expect(registry.expire(now: t0 + .seconds(29)).isEmpty)
        #expect(registry.expire(now: t0 + .seconds(30)) == [app])
        #expect(registry.route(app, now: t0 + .seconds(30)) == .unknown)
        #expect(!registry.isTaken(app, now: t0 + .seconds(30)))
        #expect(registry.nextExpiry == nil)
    }

    @Test func aHeldNameReturnsOnlyToTheSameToken() {
        var registry = TunnelRegistry<Int>()
        _ = registry.claim(app, token: tok, client: 1, now: t0)
        _ = registry.release(app, client: 1, now: t0)
        #expect(registry.claim(app, token: Array("other".utf8), client: 2, now: t0 + .seconds(1)) == .denied("name held for its previous client"))
        #expect(registry.claim(app, token: nil, client: 2, now: t0 + .seconds(1)) == .denied("name held for its previous client"))
        #expect(registry.claim(app, token: tok, client: 3, now: t0 + .seconds(2)) == .accepted(replaced: nil))
        #expect(registry.route(app, now: t0 + .seconds(2)) == .client(3))
        // After the hold, anyone authorised may take it.
        _ = registry.release(app, client: 3, now: t0 + .seconds(3))
        #expect(registry.claim(app, token: Array("other".utf8), client: 4, now: t0 + .seconds(33)) == .accepted(replaced: nil))
    }

    @Test func aNewerClientReplacesTheOlderOne() {
        var registry = TunnelRegistry<Int>()
        _ = registry.claim(app, token: tok, client: 1, now: t0)
        #expect(registry.claim(app, token: tok, client: 2, now: t0) == .accepted(replaced: 1))
        #expect(registry.route(app, now: t0) == .client(2))
        // The replaced client's departure changes nothing.
        #expect(registry.release(app, client: 1, now: t0) == .notCurrent)
        #expect(registry.route(app, now: t0) == .client(2))
        #expect(registry.claim(app, token: tok, client: 2, now: t0) == .accepted(replaced: nil))
    }

    @Test func reservedNamesRouteToNoClient() {
        var configuration = TunnelRegistry<Int>.Configuration()
        configuration.holdDuration = .milliseconds(10)
        var registry = TunnelRegistry<Int>(reservedNames: [app], configuration: configuration)
        #expect(registry.route(app, now: t0) == .noClient)
        #expect(registry.route(TunnelName("other")!, now: t0) == .unknown)
        #expect(registry.isTaken(app, now: t0))
        _ = registry.claim(app, token: tok, client: 1, now: t0)
        _ = registry.release(app, client: 1, now: t0)
        registry.expire(now: t0 + .seconds(1))
        #expect(registry.route(app, now: t0 + .seconds(1)) == .noClient)
    }

    @Test func manyNamesAreIndependent() {
        var registry = TunnelRegistry<Int>()
        for i in 0..<100 { _ = registry.claim(TunnelName("n\(i)")!, token: nil, client: i, now: t0) }
        #expect(registry.activeCount == 100)
        for i in stride(from: 0, to: 100, by: 2) { _ = registry.release(TunnelName("n\(i)")!, client: i, now: t0) }
        #expect(registry.activeCount == 50)
        #expect(registry.expire(now: t0 + .seconds(31)).count == 50)
        #expect(registry.route(TunnelName("n1")!, now: t0 + .seconds(31)) == .client(1))
    }
}
