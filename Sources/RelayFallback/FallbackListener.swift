import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import QUICTransport
import RelayCore
import RelayEngine
import WebSocketTransport
import YamuxNIO

/// The TCP fallback listener (DESIGN §9): TCP on the relay's `listen_port` (and on
/// `fallback.extra_listen`), TLS 1.3 (or plain TCP), and behind it either yamux directly (ALPN
/// `zrc-relay/1`) or HTTP/1.1 with the WebSocket upgrade (ALPN `http/1.1` or none; on a plain
/// listener, a first line `GET `) whose binary messages then carry the same yamux stream.
/// Every client is a ``FallbackConnection`` of the same ``RelayServer`` as the QUIC clients.
public final class FallbackListener: Sendable {
    /// The ALPN protocol of the yamux fallback.
    public static let alpn = FallbackWire.alpn
    /// The ALPN protocol of the WebSocket service.
    public static let httpALPN = "http/1.1"

    /// How the listener is set up.
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// PEM certificate chain and key for TLS; `nil` for plain TCP (`fallback.tls = false`).
        public var tls: (certificatePath: String, keyPath: String)?
        /// The WebSocket upgrade path; `nil` when `fallback.websocket = false`.
        public var websocketPath: String?
        /// How long the TLS handshake (or, on a plain listener, the first bytes) may take.
        public var handshakeTimeout: TimeAmount = .seconds(10)

        public init(host: String, port: Int, tls: (certificatePath: String, keyPath: String)?, websocketPath: String? = nil) {
            self.host = host
            self.port = port
            self.tls = tls
            self.websocketPath = websocketPath
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
            tlsConfiguration.applicationProtocols = configuration.websocketPath == nil ? [alpn] : [alpn, httpALPN]
            // After our close_notify, wait at most 1 s for the peer's (5 s by default): the
            // connection is over, and reading has stopped anyway.
            tlsConfiguration.shutdownTimeout = .seconds(1)
            sslContext = try NIOSSLContext(configuration: tlsConfiguration)
        } else {
            sslContext = nil
        }
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
                        try pipeline.addHandler(ALPNGate(
                            connection: connection, websocketPath: configuration.websocketPath, logger: logger,
                            timeout: configuration.handshakeTimeout))
                    } else if let path = configuration.websocketPath {
                        try pipeline.addHandler(WebSocketSniffGate(
                            path: path, timeout: configuration.handshakeTimeout,
                            logger: logger.with(peer: connection.remoteAddress)) { pipeline, choice in
                            try connection.attach(to: pipeline, over: choice == .websocket ? .websocket : .tcp)
                        })
                    } else {
                        try connection.attach(to: pipeline, over: .tcp)
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

/// Lets a TLS connection through by its ALPN, within the handshake timeout: `zrc-relay/1` is
/// yamux; `http/1.1` or none is the WebSocket service (when it is on). Anything else is closed
/// and logged.
final class ALPNGate: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: confined to the channel's event loop.
    typealias InboundIn = ByteBuffer

    private let connection: FallbackConnection
    private let websocketPath: String?
    private let logger: Logger
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(connection: FallbackConnection, websocketPath: String?, logger: Logger, timeout: TimeAmount) {
        self.connection = connection
        self.websocketPath = websocketPath
        self.logger = logger
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case TLSUserEvent.handshakeCompleted(let negotiated) = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        timer?.cancel()
        let pipeline = context.pipeline.syncOperations
        do {
            switch negotiated {
            case FallbackListener.alpn?:
                try connection.attach(to: pipeline, over: .tcp)
            case nil where websocketPath != nil, FallbackListener.httpALPN? where websocketPath != nil:
                try WebSocketServerHandshake.installLogged(
                    on: pipeline, path: websocketPath ?? "", logger: logger.with(peer: connection.remoteAddress)) { pipeline in
                    try self.connection.attach(to: pipeline, over: .websocket)
                }
            default:
                logger.info("fallback TLS client without ALPN zrc-relay/1; closed", metadata: [
                    "zrc.peer.addr": "\(connection.remoteAddress)", "alpn": "\(negotiated ?? "none")",
                ])
                context.close(promise: nil)
                return
            }
        } catch {
            logger.info("fallback connection set-up failed", metadata: ["zrc.peer.addr": "\(connection.remoteAddress)", "error": "\(error)"])
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
        pipeline.removeHandler(context: context, promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("fallback TLS error", metadata: ["zrc.peer.addr": "\(connection.remoteAddress)", "error": "\(error)"])
        context.close(promise: nil)
    }
}

extension Logger {
    /// A copy with the peer's address as metadata.
    func with(peer: TransportAddress) -> Logger {
        var copy = self
        copy[metadataKey: "zrc.peer.addr"] = "\(peer)"
        return copy
    }
}

extension TransportAddress {
    /// The relay's address type from NIO's (IP addresses only).
    init?(nio address: NIOCore.SocketAddress) {
        guard let ip = address.ipAddress, let port = address.port, let port16 = UInt16(exactly: port) else { return nil }
        self.init(ipAddress: ip, port: port16)
    }
}
