import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RelayCore
import Yamux
import YamuxNIO

/// `zrc-relay tunnel server`: accepts tunnel clients on the control port (yamux, server
/// role) and turns every connection to the public port into a stream opened towards the
/// most recent live client, which bridges it to its local service.
public final class TunnelServer: Sendable {
    /// Where to listen and whom to accept.
    public struct Configuration: Sendable {
        /// Address both listeners bind.
        public var listenHost: String = "0.0.0.0"
        /// Port of the control listener (tunnel clients).
        public var controlPort: Int = 4444
        /// Port of the public listener.
        public var publicPort: Int = 8080
        /// When set, a client must send it in its hello before it gets any traffic.
        public var token: String?
        /// How long a new client has to send its hello when a token is required.
        public var helloTimeout: TimeAmount = .seconds(10)
        /// Yamux limits and keepalive for the control connections.
        public var yamux = YamuxConfiguration()
        /// TLS for the control connections (`--tls-cert/--tls-key`); clear text when `nil`.
        public var controlTLS: NIOSSLContext?
        /// `--websocket`: the control port also takes a WebSocket upgrade at this path.
        public var websocketPath: String?

        public init() {}
    }

    /// One connected tunnel client.
    final class ClientRecord: Sendable {
        let serial: Int
        let remote: String
        let multiplexer: YamuxMultiplexer
        /// The client's hello stream, kept open for a `REPLACED` line (DESIGN §9 v3); on the
        /// client's event loop.
        let helloStream: NIOLoopBoundBox<YamuxStreamChannel?>
        init(serial: Int, remote: String, multiplexer: YamuxMultiplexer) {
            self.serial = serial
            self.remote = remote
            self.multiplexer = multiplexer
            self.helloStream = .makeEmptyBox(eventLoop: multiplexer.eventLoop)
        }

        /// Tells the client a newer one took over (`REPLACED` on its hello stream, then GoAway
        /// normal) and closes its session shortly after, once those frames left.
        func replace() {
            multiplexer.eventLoop.execute { [self] in
                if let stream = helloStream.value {
                    stream.write(ByteBuffer(string: TunnelHello.replaced))
                    stream.closeWrite()
                }
                multiplexer.goAway()
                multiplexer.eventLoop.scheduleTask(in: .milliseconds(200)) { self.multiplexer.close() }
            }
        }
    }

    /// The current client (the most recent accepted one), if any. A newer client replaces it
    /// and the older one is told and dropped: the server keeps no client it does not use.
    private let clients = NIOLockedValueBox<[ClientRecord]>([])
    private let nextSerial = NIOLockedValueBox(0)
    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let channels = NIOLockedValueBox<[any Channel]>([])

    /// - Parameters:
    ///   - configuration: Ports, token, limits.
    ///   - group: The event loops for both listeners and every connection.
    ///   - logger: Where events go (with addresses and byte counts).
    public init(configuration: Configuration, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
    }

    /// Binds both listeners. Returns the bound (control, public) ports.
    public func start() async throws -> (control: Int, public: Int) {
        let control = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try self.initializeControl(channel) }
            }
            .bind(host: configuration.listenHost, port: configuration.controlPort).get()
        let publicListener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in self.initializePublic(channel) }
            .bind(host: configuration.listenHost, port: configuration.publicPort).get()
        channels.withLockedValue { $0 = [control, publicListener] }
        let ports = (control.localAddress?.port ?? 0, publicListener.localAddress?.port ?? 0)
        logger.info("tunnel server listening", metadata: [
            "control": "\(configuration.listenHost):\(ports.0)", "public": "\(configuration.listenHost):\(ports.1)",
            "token_required": "\(configuration.token != nil)", "control_tls": "\(configuration.controlTLS != nil)",
        ])
        if configuration.token != nil, configuration.controlTLS == nil {
            logger.warning("the token travels in clear text: use --tls-cert/--tls-key on untrusted networks")
        }
        return ports
    }

    /// Runs until both listeners are closed.
    public func waitUntilClosed() async throws {
        for channel in channels.withLockedValue({ $0 }) {
            try await channel.closeFuture.get()
        }
    }

    /// Closes the listeners and every client session.
    public func shutdown() async {
        for channel in channels.withLockedValue({ $0 }) {
            try? await channel.close()
        }
        for client in clients.withLockedValue({ $0 }) { client.multiplexer.close() }
    }

    /// The number of clients that may carry traffic (for tests).
    public var clientCount: Int { clients.withLockedValue { $0.count } }

    // MARK: Control connections

    private func initializeControl(_ channel: any Channel) throws {
        let serial = nextSerial.withLockedValue { $0 += 1; return $0 }
        let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let log = logger.with("tunnel.client", "\(serial)").with("peer.addr", "\(remote)")
        let token = configuration.token
        let helloTimeout = configuration.helloTimeout
        // Per-connection state, touched only on the connection's event loop.
        let loop = channel.eventLoop
        let authenticated = NIOLoopBoundBox.makeBoxSendingValue(token == nil, eventLoop: loop)
        let record = NIOLoopBoundBox<ClientRecord?>.makeEmptyBox(eventLoop: loop)
        let unexpectedStreams = NIOLoopBoundBox.makeBoxSendingValue(LogThrottle<Int>(), eventLoop: loop)
        let multiplexer = YamuxMultiplexer(role: .server, configuration: configuration.yamux, eventLoop: channel.eventLoop) {
            [logger = log] stream in
            // The only stream a client opens is its hello; one is enough. Refusals are
            // charged to the session's control-frame budget; their log lines are throttled.
            guard stream.id == 1 else {
                let now = RelayInstant(nanoseconds: NIODeadline.now().uptimeNanoseconds)
                if case .log(let suppressed) = unexpectedStreams.value.record(0, now: now) {
                    logger.notice("client opened an unexpected stream; reset",
                                  metadata: ["stream": "\(stream.id)", "suppressed": "\(suppressed)"])
                }
                return false
            }
            TunnelLineReader.readLine(from: stream, timeout: helloTimeout).whenComplete { result in
                let verdict: TunnelHello.Verdict
                switch result {
                case .success(let line): verdict = TunnelHello.check(line: line, expectedToken: token)
                case .failure(let error): verdict = .denied("\(error)")
                }
                stream.write(ByteBuffer(string: TunnelHello.answer(verdict)))
                guard let client = record.value else {
                    stream.closeWrite()
                    return
                }
                switch verdict {
                case .accepted:
                    // Kept open: a `REPLACED` line may follow when a newer client takes over.
                    client.helloStream.value = stream
                    if !authenticated.value {
                        authenticated.value = true
                        self.register(client, logger: logger)
                    }
                case .denied(let reason):
                    stream.closeWrite()
                    logger.warning("tunnel client refused", metadata: ["reason": "\(reason)"])
                    client.multiplexer.goAway()
                    channel.eventLoop.scheduleTask(in: .milliseconds(200)) { client.multiplexer.close() }
                }
            }
            return true
        }
        let client = ClientRecord(serial: serial, remote: remote, multiplexer: multiplexer)
        record.value = client
        try TunnelControlPipeline.install(on: channel, tls: configuration.controlTLS, websocketPath: configuration.websocketPath,
                                          multiplexer: multiplexer, logger: log)
        log.info("tunnel client connected")
        if token == nil {
            register(client, logger: log)
        } else {
            channel.eventLoop.scheduleTask(in: helloTimeout) {
                if !authenticated.value {
                    log.warning("tunnel client sent no hello in time; closing")
                    multiplexer.close()
                    channel.close(promise: nil)  // also when yamux has not started (a WebSocket still upgrading)
                }
            }
        }
        multiplexer.sessionClosed.whenSuccess { reason in
            let wasCurrent = self.unregister(client)
            log.info("tunnel client disconnected", metadata: ["reason": "\(reason)", "was_current": "\(wasCurrent)"])
        }
    }

    private func register(_ client: ClientRecord, logger: Logger) {
        let replaced = clients.withLockedValue { list -> [ClientRecord] in
            let older = list
            list = [client]
            return older
        }
        logger.info("tunnel client is now the current client")
        for old in replaced {
            logger.info("tunnel client replaced by a newer one; dropped", metadata: ["replaced.client": "\(old.serial)"])
            old.replace()
        }
    }

    /// Removes a client; returns whether it was the current one. Losing the current client
    /// clears the reference: public connections are refused until a client (re)connects.
    private func unregister(_ client: ClientRecord) -> Bool {
        clients.withLockedValue { list in
            let wasCurrent = list.last === client
            list.removeAll { $0 === client }
            return wasCurrent
        }
    }

    // MARK: Public connections

    private func initializePublic(_ channel: any Channel) -> EventLoopFuture<Void> {
        let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        guard let client = clients.withLockedValue({ $0.last }) else {
            logger.notice("public connection refused: no tunnel client", metadata: ["public.addr": "\(remote)"])
            return channel.close()
        }
        let log = logger.with("public.addr", "\(remote)").with("tunnel.client", "\(client.serial)")
        let started = ContinuousClock.now
        return client.multiplexer.openStream().hop(to: channel.eventLoop).flatMap { stream in
            log.info("public connection opened", metadata: ["stream": "\(stream.id)"])
            let bridge = YamuxStreamBridge(stream: stream) { summary in
                log.info("public connection closed", metadata: [
                    "stream": "\(stream.id)", "bytes_in": "\(summary.bytesToStream)", "bytes_out": "\(summary.bytesFromStream)",
                    "duration_ms": "\(milliseconds(since: started))",
                    "ending": "\(summary.ending)",
                ])
            }
            return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bridge) }
        }.flatMapError { error in
            log.warning("public connection closed: cannot open a stream to the tunnel client", metadata: ["error": "\(error)"])
            return channel.close()
        }
    }
}

/// Whole milliseconds elapsed since `start`, for log lines.
func milliseconds(since start: ContinuousClock.Instant) -> Int64 {
    let elapsed = ContinuousClock.now - start
    return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
}

extension Logger {
    /// A copy with one more metadata value.
    func with(_ key: String, _ value: String) -> Logger {
        var copy = self
        copy[metadataKey: key] = "\(value)"
        return copy
    }
}
