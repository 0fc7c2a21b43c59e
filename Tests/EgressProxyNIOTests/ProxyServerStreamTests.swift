import Crypto
import EgressProxy
import EgressProxyNIO
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SwiftASN1
import Testing
import X509
import Yamux
import YamuxNIO

/// The server end to end on loopback, driven by a hand-made agent (TLS + yamux) so the wire
/// can be abused: overlong and malformed `OPEN` lines, an expired client certificate.
@Suite(.serialized) struct ProxyServerStreamTests {
    /// A CA, a server certificate and a client certificate in a fresh folder.
    struct Credentials {
        let directory: String

        init() throws {
            directory = NSTemporaryDirectory() + "zrc-proxy-test-\(UUID().uuidString)"
            try PrivateCA.initialize(directory: directory, name: "test CA", force: false)
            try PrivateCA.issue(directory: directory, name: "server", role: .server(dns: ["localhost"], ips: ["127.0.0.1"]), force: false)
            try PrivateCA.issue(directory: directory, name: "agent-a", role: .client, force: false)
        }

        func path(_ name: String) -> String { directory + "/" + name }
    }

    /// Records a stream's events.
    final class Recorder: Sendable {
        let events = NIOLockedValueBox<[YamuxStreamEvent]>([])
        let bytes = NIOLockedValueBox<[UInt8]>([])

        func attach(_ stream: YamuxStreamChannel) {
            stream.setEventHandler { event in
                if case .data(let data) = event {
                    self.bytes.withLockedValue { $0 += Array(data.readableBytesView) }
                    stream.consumed(data.readableBytes)
                }
                self.events.withLockedValue { $0.append(event) }
            }
        }

        var wasReset: Bool {
            events.withLockedValue { $0.contains { if case .reset = $0 { return true } else { return false } } }
        }

        var text: String { String(decoding: bytes.withLockedValue { $0 }, as: UTF8.self) }
    }

    static func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    static func startServer(_ credentials: Credentials, allowList: String = "*") async throws -> (EgressProxyServer, Int) {
        var configuration = EgressProxyServer.Configuration(caPath: credentials.path("ca.crt"), certificatePath: credentials.path("server.crt"),
                                                            keyPath: credentials.path("server.key"))
        configuration.listenHost = "127.0.0.1"
        configuration.listenPort = 0
        configuration.allowPrivate = true
        configuration.allowList = try ProxyAllowList(parsing: allowList)
        let server = EgressProxyServer(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton,
                                       logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let address = try await server.start()
        return (server, address.port ?? 0)
    }

    /// A TLS + yamux client like the agent's.
    static func connect(port: Int, certificate: String, key: String, ca: String) async throws -> YamuxMultiplexer {
        let context = try ProxyTLS.clientContext(caPath: ca, certificatePath: certificate, keyPath: key)
        let slot = NIOLockedValueBox<YamuxMultiplexer?>(nil)
        _ = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                    let multiplexer = YamuxMultiplexer(role: .client, eventLoop: channel.eventLoop) { _ in false }
                    slot.withLockedValue { $0 = multiplexer }
                    try channel.pipeline.syncOperations.addHandler(multiplexer)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return try #require(slot.withLockedValue { $0 })
    }

    @Test func openThenBytesBothWays() async throws {
        let credentials = try Credentials()
        let (server, port) = try await Self.startServer(credentials)
        defer { Task { await server.shutdown() } }
        // A destination that echoes.
        let echo = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Echo()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { echo.close(promise: nil) }
        let multiplexer = try await Self.connect(port: port, certificate: credentials.path("agent-a.crt"),
                                                 key: credentials.path("agent-a.key"), ca: credentials.path("ca.crt"))
        let stream = try await multiplexer.openStream().get()
        let recorder = Recorder()
        recorder.attach(stream)
        // The OPEN line and the first bytes in one write: the bytes after the line are held
        // while dialling and delivered first.
        try await stream.write(ByteBuffer(string: "OPEN 127.0.0.1 \(echo.localAddress?.port ?? 0)\nping")).get()
        #expect(await Self.eventually { recorder.text == "OK\nping" })
        try await stream.write(ByteBuffer(string: "-pong")).get()
        #expect(await Self.eventually { recorder.text == "OK\nping-pong" })
        multiplexer.close()
    }

    @Test(arguments: [
        String(repeating: "A", count: 600),
        "OPEN " + String(repeating: "a", count: 600) + " 80\n",
        "HELLO\n",
        "OPEN example.com\n",
        "OPEN 127.0.0.1 99999\n",
    ])
    func malformedOrOverlongOpenLinesResetTheStream(_ line: String) async throws {
        let credentials = try Credentials()
        let (server, port) = try await Self.startServer(credentials)
        defer { Task { await server.shutdown() } }
        let multiplexer = try await Self.connect(port: port, certificate: credentials.path("agent-a.crt"),
                                                 key: credentials.path("agent-a.key"), ca: credentials.path("ca.crt"))
        let stream = try await multiplexer.openStream().get()
        let recorder = Recorder()
        recorder.attach(stream)
        stream.write(ByteBuffer(string: line))
        #expect(await Self.eventually { recorder.wasReset })
        #expect(recorder.text.isEmpty)
        // The session survives: another stream still opens and is answered.
        let second = try await multiplexer.openStream().get()
        let answer = Recorder()
        answer.attach(second)
        // (The proxy itself: refused without any dial, even with --allow-private.)
        second.write(ByteBuffer(string: "OPEN 127.0.0.1 \(port)\n"))
        #expect(await Self.eventually { answer.text.hasPrefix("ERR denied ") })
        multiplexer.close()
    }

    @Test func deniedByTheAllowListAnswersERR() async throws {
        let credentials = try Credentials()
        let (server, port) = try await Self.startServer(credentials, allowList: "*.example.com:443")
        defer { Task { await server.shutdown() } }
        let multiplexer = try await Self.connect(port: port, certificate: credentials.path("agent-a.crt"),
                                                 key: credentials.path("agent-a.key"), ca: credentials.path("ca.crt"))
        let stream = try await multiplexer.openStream().get()
        let recorder = Recorder()
        recorder.attach(stream)
        stream.write(ByteBuffer(string: "OPEN 127.0.0.1 443\n"))
        #expect(await Self.eventually { recorder.text.hasSuffix("\n") })
        #expect(recorder.text.hasPrefix("ERR denied "))
        multiplexer.close()
    }

    @Test func anExpiredClientCertificateIsRefused() async throws {
        let credentials = try Credentials()
        let (server, port) = try await Self.startServer(credentials)
        defer { Task { await server.shutdown() } }
        // Signed by the right CA, but expired yesterday.
        let caCertificate = try Certificate(pemEncoded: String(contentsOfFile: credentials.path("ca.crt"), encoding: .utf8))
        let caKey = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: credentials.path("ca.key"), encoding: .utf8))
        let key = P256.Signing.PrivateKey()
        let now = Date()
        let expired = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-10 * 86_400), notValidAfter: now.addingTimeInterval(-86_400),
            issuer: caCertificate.subject, subject: try DistinguishedName { CommonName("old-agent") }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                try ExtendedKeyUsage([.clientAuth])
            },
            issuerPrivateKey: .init(caKey))
        try (try expired.serializeAsPEM().pemString).write(toFile: credentials.path("old.crt"), atomically: true, encoding: .utf8)
        try key.pemRepresentation.write(toFile: credentials.path("old.key"), atomically: true, encoding: .utf8)
        let multiplexer = try await Self.connect(port: port, certificate: credentials.path("old.crt"), key: credentials.path("old.key"),
                                                 ca: credentials.path("ca.crt"))
        await #expect(throws: (any Error).self) { _ = try await multiplexer.ping().get() }
        // The same CA's valid certificate is accepted.
        let good = try await Self.connect(port: port, certificate: credentials.path("agent-a.crt"), key: credentials.path("agent-a.key"),
                                          ca: credentials.path("ca.crt"))
        _ = try await good.ping().get()
        good.close()
    }
}

/// Echoes what it reads.
final class Echo: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}
