import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
@testable import ReverseTunnel
import Testing
import Yamux
import YamuxNIO

/// `PublicHTTPHandler` on an `EmbeddedChannel`, with a real tunnel behind it: the server's and
/// the tunnel client's `YamuxMultiplexer`s back to back on embedded channels, and a fake local
/// service on the client's streams. Time is the embedded loop's.
final class TunnelHarness {
    let loop = EmbeddedEventLoop()
    let serverLink: EmbeddedChannel
    let clientLink: EmbeddedChannel
    let serverMux: YamuxMultiplexer
    /// What the fake local service received, per stream.
    let received = NIOLockedValueBox<[UInt32: String]>([:])
    /// What it answers once a request head arrived (`nil`: nothing; "RESET": resets).
    let answer = NIOLockedValueBox<String?>("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    init() throws {
        serverLink = EmbeddedChannel(loop: loop)
        clientLink = EmbeddedChannel(loop: loop)
        serverMux = YamuxMultiplexer(role: .server, eventLoop: loop) { _ in false }
        let received = self.received
        let answer = self.answer
        let clientMux = YamuxMultiplexer(role: .client, eventLoop: loop) { stream in
            let answered = NIOLockedValueBox(false)
            stream.setEventHandler { event in
                guard case .data(let bytes) = event else { return }
                let text = String(buffer: bytes)
                stream.consumed(bytes.readableBytes)
                let all = received.withLockedValue { $0[stream.id, default: ""] += text; return $0[stream.id] ?? "" }
                guard all.contains("\r\n\r\n"), !answered.withLockedValue({ $0 }) else { return }
                answered.withLockedValue { $0 = true }
                switch answer.withLockedValue({ $0 }) {
                case nil: break
                case "RESET": stream.reset()
                case let response?: stream.write(ByteBuffer(string: response))
                }
            }
            return true
        }
        try serverLink.pipeline.syncOperations.addHandler(serverMux)
        try clientLink.pipeline.syncOperations.addHandler(clientMux)
        try serverLink.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try clientLink.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
    }

    /// Moves bytes between the two links until both are quiet.
    func pump() throws {
        for _ in 0..<100 {
            loop.run()
            var moved = false
            while let bytes = try serverLink.readOutbound(as: ByteBuffer.self) {
                try clientLink.writeInbound(bytes)
                moved = true
            }
            while let bytes = try clientLink.readOutbound(as: ByteBuffer.self) {
                try serverLink.writeInbound(bytes)
                moved = true
            }
            loop.run()
            if !moved { return }
        }
    }

    func context(resolve: @escaping @Sendable (TunnelName) -> TunnelResolution) -> PublicListenerContext {
        PublicListenerContext(
            router: TunnelHostRouter(domain: "t.test"), proto: "http", headTimeout: .seconds(10), responseTimeout: .seconds(30),
            maximumHeadLength: 64 * 1024, bodyIdleTimeout: .seconds(60), metrics: TunnelMetrics(), logger: Logger(label: "test"),
            resolve: resolve)
    }

    /// A public connection from 10.1.2.3 whose `app` resolves to a stream of the tunnel.
    func publicChannel() throws -> EmbeddedChannel {
        let mux = serverMux
        let shared = context { name in
            name.rawValue == "app" ? .stream(mux.openStream()) : .error(name.rawValue == "idle" ? .noClient : .unknownTunnel)
        }
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 80)).wait()
        channel.remoteAddress = try SocketAddress(ipAddress: "10.1.2.3", port: 5555)  // (connect sets it too)
        try channel.pipeline.syncOperations.addHandler(PublicHTTPHandler(shared: shared, serverName: nil))
        return channel
    }

    func send(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
        try pump()
    }

    func output(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let bytes = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: bytes) }
        return text
    }
}

@Suite struct PublicHTTPHandlerTests {
    @Test func forwardsWithRewrittenHeadsAndRelaysTheAnswer() throws {
        let harness = try TunnelHarness()
        let channel = try harness.publicChannel()
        try harness.send(channel, "GET /a?x=1 HTTP/1.1\r\nHost: App.t.test:8080\r\nX-Forwarded-For: 6.6.6.6\r\nAccept: */*\r\n\r\n")
        #expect(try harness.output(channel) == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let seen = harness.received.withLockedValue { $0.values.first } ?? ""
        #expect(seen == "GET /a?x=1 HTTP/1.1\r\nHost: App.t.test:8080\r\nAccept: */*\r\nX-Forwarded-For: 10.1.2.3\r\n"
            + "X-Forwarded-Host: App.t.test:8080\r\nX-Forwarded-Proto: http\r\n\r\n")
        #expect(channel.isActive)
    }

    @Test func bodiesPassUnchangedAndALaterHostIsMisdirected() throws {
        let harness = try TunnelHarness()
        let channel = try harness.publicChannel()
        try harness.send(channel, "POST /u HTTP/1.1\r\nHost: app.t.test\r\nTransfer-Encoding: chunked\r\n\r\n4;x\r\nwiki\r\n0\r\n\r\n"
                         + "GET /2 HTTP/1.1\r\nHost: other.t.test\r\n\r\n")
        let out = try harness.output(channel)
        #expect(out.hasPrefix("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        #expect(out.contains("HTTP/1.1 421 Misdirected Request\r\n"))
        #expect(harness.received.withLockedValue { $0.values.first }?.hasSuffix("\r\n\r\n4;x\r\nwiki\r\n0\r\n\r\n") == true)
        #expect(harness.received.withLockedValue { $0.values.first }?.contains("/2") == false)
        #expect(!channel.isActive)
    }

    @Test func theServerAnswersItself() throws {
        let cases: [(String, String)] = [
            ("GET / HTTP/1.0\r\n\r\n", "HTTP/1.1 400 "),
            ("GET / HTTP/1.1\r\nHost: a_b.t.test\r\n\r\n", "HTTP/1.1 400 "),
            ("GET / HTTP/1.1\r\nHost: nope.t.test\r\n\r\n", "HTTP/1.1 404 "),
            ("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n", "HTTP/1.1 404 "),
            ("GET / HTTP/1.1\r\nHost: idle.t.test\r\n\r\n", "HTTP/1.1 502 "),
            ("\u{16}\u{3}\u{1}junk\r\n\r\n", "HTTP/1.1 400 "),
            ("GET / HTTP/1.1\r\nHost: app.t.test\r\nX: \(String(repeating: "y", count: 70_000))\r\n\r\n", "HTTP/1.1 431 "),
        ]
        for (request, status) in cases {
            let harness = try TunnelHarness()
            let channel = try harness.publicChannel()
            try harness.send(channel, request)
            let out = try harness.output(channel)
            #expect(out.hasPrefix(status), "\(request.prefix(40))")
            #expect(out.contains("Connection: close\r\n"))
            #expect(!channel.isActive)
        }
    }

    @Test func slowHeadsAndSilentServicesTimeOut() throws {
        let harness = try TunnelHarness()
        let slow = try harness.publicChannel()
        try harness.send(slow, "GET / HTTP/1.1\r\nHost: app")
        harness.loop.advanceTime(by: .seconds(9))
        #expect(slow.isActive)
        harness.loop.advanceTime(by: .seconds(2))
        #expect(try harness.output(slow).hasPrefix("HTTP/1.1 408 "))

        harness.answer.withLockedValue { $0 = nil }
        let silent = try harness.publicChannel()
        try harness.send(silent, "GET / HTTP/1.1\r\nHost: app.t.test\r\n\r\n")
        harness.loop.advanceTime(by: .seconds(29))
        #expect(silent.isActive)
        harness.loop.advanceTime(by: .seconds(2))
        try harness.pump()
        #expect(try harness.output(silent).hasPrefix("HTTP/1.1 504 "))
        #expect(!silent.isActive)
    }

    @Test func anUpgradeBecomesARawBridgeBothWays() throws {
        let harness = try TunnelHarness()
        harness.answer.withLockedValue { $0 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n\u{0}\u{1}raw" }
        let channel = try harness.publicChannel()
        try harness.send(channel, "GET /ws HTTP/1.1\r\nHost: app.t.test\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
        #expect(try harness.output(channel).hasSuffix("\r\n\r\n\u{0}\u{1}raw"))
        try harness.send(channel, "GET /not-a-request HTTP/1.1\r\nHost: other\r\n\r\n\u{ff}")
        #expect(harness.received.withLockedValue { $0.values.first }?.hasSuffix("\r\n\r\nGET /not-a-request HTTP/1.1\r\nHost: other\r\n\r\n\u{ff}") == true)
        #expect(channel.isActive)
        harness.loop.advanceTime(by: .seconds(60))
        #expect(channel.isActive)
    }

    @Test func aStalledBodyEndsTheConnection() throws {
        let harness = try TunnelHarness()
        harness.answer.withLockedValue { $0 = nil }
        let channel = try harness.publicChannel()
        try harness.send(channel, "POST / HTTP/1.1\r\nHost: app.t.test\r\nContent-Length: 10\r\n\r\nabc")
        harness.loop.advanceTime(by: .seconds(50))
        try harness.send(channel, "de")
        harness.loop.advanceTime(by: .seconds(50))
        #expect(channel.isActive)
        harness.loop.advanceTime(by: .seconds(11))
        #expect(!channel.isActive)
    }

    @Test func aResetBeforeTheAnswerIsBadGateway() throws {
        let harness = try TunnelHarness()
        harness.answer.withLockedValue { $0 = "RESET" }
        let channel = try harness.publicChannel()
        try harness.send(channel, "GET / HTTP/1.1\r\nHost: app.t.test\r\n\r\n")
        let out = try harness.output(channel)
        #expect(out.hasPrefix("HTTP/1.1 502 ") && out.hasSuffix("local service refused or reset the connection\n"))
    }
}
