import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import QUICTransport
import RelayCore
import RelayEngine
import YamuxNIO

/// The TCP fallback listener (DESIGN §9): TCP on the relay's `listen_port`, TLS 1.3 with
/// ALPN `zrc-relay/1` (or plain TCP), yamux server inside, every client a
/// ``FallbackConnection`` of the same ``RelayServer`` as the QUIC clients.
public final class FallbackListener: Sendable {
    /// The ALPN protocol a TLS client must offer.
    public static let alpn = FallbackWire.alpn

    /// How the listener is set up.
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// PEM certificate chain and key for TLS; `nil` for plain TCP (`fallback.tls = false`).
        public var tls: (certificatePath: String, keyPath: String)?
        /// How long the TLS handshake may take.
        public var handshakeTimeout: TimeAmount = .seconds(10)

        public init(host: String, port: Int, tls: (certificatePath: String, keyPath: String)?) {
            self.host = host
            self.port = port
            self.tls = tls
        }
    }

    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// The bound address.
    public var localAddress: NIOCore.SocketAddress? { channel.localAddress }

    /// Binds and starts accepting.
    public static func start(
        configuration: Configuration, relay: RelayServer, group: any EventLoopGroup, logger: Logger
    ) async throws -> FallbackListener {
        let sslContext: NIOSSLContext?
        if let tls = configuration.tls {
            var tlsConfiguration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certificatePath).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.keyPath, format: .pem)))
            tlsConfiguration.minimumTLSVersion = .tlsv13
            tlsConfiguration.applicationProtocols = [alpn]
            // After our close_notify, wait at most 1 s for the peer's (5 s by default): the
            // connection is over, and reading has stopped anyway.
            tlsConfiguration.shutdownTimeout = .seconds(1)
            sslContext = try NIOSSLContext(configuration: tlsConfiguration)
        } else {
            sslContext = nil
        }
        let handshakeTimeout = configuration.handshakeTimeout
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let remote = channel.remoteAddress.flatMap(TransportAddress.init(nio:)) else {
                        channel.close(promise: nil)
                        return
                    }
                    let local = channel.localAddress?.ipAddress ?? configuration.host
                    let connection = FallbackConnection(
                        remoteAddress: remote, localHost: local, eventLoop: channel.eventLoop, relay: relay, logger: logger)
                    let pipeline = channel.pipeline.syncOperations
                    if let sslContext {
                        try pipeline.addHandler(NIOSSLServerHandler(context: sslContext))
                        try pipeline.addHandler(ALPNGate(connection: connection, logger: logger, timeout: handshakeTimeout))
                        try pipeline.addHandler(connection.multiplexer)
                    } else {
                        try pipeline.addHandler(connection.multiplexer)
                        connection.start()
                    }
                }
            }
            .bind(host: configuration.host, port: configuration.port).get()
        return FallbackListener(channel: channel)
    }

    /// Stops accepting (open connections stay until the relay ends them).
    public func stop() async {
        try? await channel.close()
    }
}

/// Lets a TLS connection through only with ALPN `zrc-relay/1`, within the handshake timeout.
final class ALPNGate: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: confined to the channel's event loop.
    typealias InboundIn = ByteBuffer

    private let connection: FallbackConnection
    private let logger: Logger
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(connection: FallbackConnection, logger: Logger, timeout: TimeAmount) {
        self.connection = connection
        self.logger = logger
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            timer?.cancel()
            guard negotiated == FallbackListener.alpn else {
                logger.info("fallback TLS client without ALPN zrc-relay/1; closed", metadata: [
                    "zrc.peer.addr": "\(connection.remoteAddress)", "alpn": "\(negotiated ?? "none")",
                ])
                context.close(promise: nil)
                return
            }
            connection.start()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("fallback TLS error", metadata: ["zrc.peer.addr": "\(connection.remoteAddress)", "error": "\(error)"])
        context.close(promise: nil)
    }
}

extension TransportAddress {
    /// The relay's address type from NIO's (IP addresses only).
    init?(nio address: NIOCore.SocketAddress) {
        guard let ip = address.ipAddress, let port = address.port, let port16 = UInt16(exactly: port) else { return nil }
        self.init(ipAddress: ip, port: port16)
    }
}
