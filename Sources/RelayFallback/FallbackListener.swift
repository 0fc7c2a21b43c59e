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
                    if let sslContext { try pipeline.addHandler(NIOSSLServerHandler(context: sslContext)) }
                    try pipeline.addHandler(FallbackProtocolGate(
                        connection: connection, websocketPath: configuration.websocketPath, tls: sslContext != nil,
                        logger: logger, timeout: configuration.handshakeTimeout))
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

/// Decides what a new fallback connection speaks, within the handshake timeout: yamux (ALPN
/// `zrc-relay/1`, or plain bytes that do not start with `GET `) or HTTP/1.1 with the WebSocket
/// upgrade (ALPN `http/1.1` or none, or a plain `GET `). Anything else is closed and logged.
final class FallbackProtocolGate: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: confined to the channel's event loop.
    typealias InboundIn = ByteBuffer

    private enum Service { case yamux, websocket }

    private let connection: FallbackConnection
    private let websocketPath: String?
    private let tls: Bool
    private let logger: Logger
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    /// Plain listener: the first bytes, until 4 tell `GET ` from yamux.
    private var sniffed: ByteBuffer?
    private var decided = false

    init(connection: FallbackConnection, websocketPath: String?, tls: Bool, logger: Logger, timeout: TimeAmount) {
        self.connection = connection
        self.websocketPath = websocketPath
        self.tls = tls
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
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            switch negotiated {
            case FallbackListener.alpn?:
                choose(.yamux, context: context)
            case nil where websocketPath != nil, FallbackListener.httpALPN? where websocketPath != nil:
                choose(.websocket, context: context)
            default:
                logger.info("fallback TLS client without ALPN zrc-relay/1; closed", metadata: [
                    "zrc.peer.addr": "\(connection.remoteAddress)", "alpn": "\(negotiated ?? "none")",
                ])
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !tls, !decided else {
            context.fireChannelRead(data)
            return
        }
        var bytes = unwrapInboundIn(data)
        if sniffed == nil { sniffed = bytes } else { sniffed?.writeBuffer(&bytes) }
        guard let first = sniffed, first.readableBytes >= 4 || websocketPath == nil else { return }
        let isGet = first.getString(at: first.readerIndex, length: 4) == "GET "
        choose(isGet && websocketPath != nil ? .websocket : .yamux, context: context)
    }

    private func choose(_ service: Service, context: ChannelHandlerContext) {
        guard !decided else { return }
        decided = true
        timer?.cancel()
        let pipeline = context.pipeline.syncOperations
        let connection = self.connection
        do {
            switch service {
            case .yamux:
                try pipeline.addHandler(connection.multiplexer, position: .after(self))
                connection.start(transport: .tcp)
            case .websocket:
                try installWebSocket(pipeline)
            }
        } catch {
            logger.info("fallback connection set-up failed", metadata: ["zrc.peer.addr": "\(connection.remoteAddress)", "error": "\(error)"])
            context.close(promise: nil)
            return
        }
        // Bytes read while sniffing go to the chosen handlers, then the gate leaves.
        if let early = sniffed {
            sniffed = nil
            context.fireChannelRead(NIOAny(early))
        }
        pipeline.removeHandler(context: context, promise: nil)
    }

    private func installWebSocket(_ pipeline: ChannelPipeline.SynchronousOperations) throws {
        guard let path = websocketPath else { return }
        let connection = self.connection
        let logger = self.logger
        let peer = "\(connection.remoteAddress)"
        // The HTTP handlers go after the gate: added at the end while the gate is still there.
        try WebSocketServerHandshake.install(
            on: pipeline, path: path,
            onEnd: { ending in
                logger.info("websocket closed", metadata: ["zrc.peer.addr": "\(peer)", "close": "\(ending)"])
            },
            outcome: { outcome in
                switch outcome {
                case .upgraded:
                    logger.info("websocket upgraded", metadata: ["zrc.peer.addr": "\(peer)"])
                case .refused(let status, let reason):
                    logger.info("websocket upgrade refused", metadata: ["zrc.peer.addr": "\(peer)", "status": "\(status)", "reason": "\(reason)"])
                }
            },
            streamReady: { pipeline in
                try pipeline.addHandler(connection.multiplexer)
                connection.start(transport: .websocket)
            })
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
