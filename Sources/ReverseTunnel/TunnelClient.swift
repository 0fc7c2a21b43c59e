import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import WebSocketTransport
import Yamux
import YamuxNIO

/// `zrc-relay tunnel client`: connects to a tunnel server's control port (yamux, client
/// role), says hello, then bridges every stream the server opens to a local TCP service.
public final class TunnelClient: Sendable {
    /// Whom to reach and what to expose.
    public struct Configuration: Sendable {
        /// The tunnel server's control address.
        public var serverHost: String
        public var serverPort: Int
        /// The local service every public connection is bridged to.
        public var localHost: String = "127.0.0.1"
        public var localPort: Int = 3000
        /// Sent in the hello; required when the server has a token.
        public var token: String?
        /// How long connecting and the hello may take.
        public var connectTimeout: TimeAmount = .seconds(10)
        /// Yamux limits and keepalive: a ping every 15 s, 10 s without an answer is a dead link
        /// (DESIGN §11).
        public var yamux: YamuxConfiguration = {
            var yamux = YamuxConfiguration()
            yamux.keepAliveInterval = NamedTunnelDefaults.clientPingInterval
            yamux.keepAliveTimeout = NamedTunnelDefaults.clientPingTimeout
            return yamux
        }()
        /// The tunnel name to ask for (`--name`); `nil` sends the plain hello, which a named
        /// server answers with a random name.
        public var name: String?
        /// TLS for the control connection; clear text when `nil`.
        public var tls: NIOSSLContext?
        /// Reach the control port over WebSocket (`wss://host:port/path`, DESIGN §9) instead
        /// of raw TCP/TLS; `serverHost`/`serverPort` are then the URL's.
        public var websocket: WebSocketAddress?
        /// For WebSocket: verify the server against these CAs (PEM), the system's roots
        /// (`verifyWebSocketServer`), or not at all.
        public var websocketCAPath: String?
        public var verifyWebSocketServer = true
        /// Dial the control port through this HTTP proxy (`CONNECT`), WebSocket only.
        public var proxy: HTTPProxy?
        /// Whether to reconnect when the session ends or cannot be set up; `nil` means "in
        /// named mode" (once a server answered with a public URL, or with `--name`).
        public var reconnect: Bool?

        public init(serverHost: String, serverPort: Int) {
            self.serverHost = serverHost
            self.serverPort = serverPort
        }
    }

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger

    public init(configuration: Configuration, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
    }

    /// How a session that was established ended (both are normal ends: exit 0).
    public enum Ending: Sendable {
        /// The server closed the session (it stopped, or the connection was lost).
        case serverClosed(YamuxSessionCloseReason)
        /// A newer client for this server took over; this one was told `REPLACED` (or got
        /// the server's GoAway) and must not reconnect.
        case replaced
    }

    /// What the server said when it accepted this client.
    public struct Established: Sendable {
        /// The public URL (named server), or `nil` (plain server).
        public var publicURL: String?
    }

    /// Connects, says hello and serves until the session ends (one session, no reconnect).
    /// - Parameter onEstablished: Called once the server accepted the hello.
    /// - Returns: How the session ended.
    /// - Throws: ``TunnelError`` when the server is unreachable or refuses the hello.
    public func run(onEstablished: @Sendable (Established) -> Void = { _ in }) async throws -> Ending {
        let address = "\(configuration.serverHost):\(configuration.serverPort)"
        let (channel, multiplexer) = try await connectControl()
        let replaced = NIOLockedValueBox(false)
        let established: Established
        do {
            let hello = try await multiplexer.openStream().get()
            hello.write(ByteBuffer(string: NamedTunnelHello.request(name: configuration.name, token: configuration.token)))
            hello.closeWrite()
            let answer = try await TunnelLineReader.readLine(from: hello, timeout: configuration.connectTimeout).get()
            switch NamedTunnelHello.parseAnswer(answer) {
            case .accepted(let url):
                established = Established(publicURL: url)
            case .denied(let reason):
                multiplexer.close()
                throw TunnelError.refused(reason)
            case .malformed(let why):
                multiplexer.close()
                throw TunnelError.handshakeMalformed(why)
            }
            // The server keeps the hello stream open: `REPLACED` there means a newer client
            // took over (DESIGN §9 v3). (The GoAway that follows is also what a stopping
            // server sends, so the line is what tells the two apart.)
            hello.setEventHandler { event in
                if case .data(let bytes) = event {
                    if bytes.readableBytesView.starts(with: TunnelHello.replaced.utf8.dropLast()) { replaced.withLockedValue { $0 = true } }
                    hello.consumed(bytes.readableBytes)
                }
            }
        } catch let error as TunnelError {
            multiplexer.close()
            throw error
        } catch {
            multiplexer.close()
            throw TunnelError.handshakeMalformed("\(error)")
        }
        logger.info("tunnel established", metadata: [
            "server": "\(address)", "local": "\(configuration.localHost):\(configuration.localPort)",
            "url": "\(established.publicURL ?? "-")",
        ])
        onEstablished(established)
        let reason = try await multiplexer.sessionClosed.get()
        _ = try? await channel.closeFuture.get()
        return replaced.withLockedValue { $0 } ? .replaced : .serverClosed(reason)
    }

    /// How a reconnecting client stopped.
    public enum FinalEnding: Sendable {
        /// A newer client took the tunnel over (exit 0).
        case replaced
        /// The session ended and reconnecting is off (exit 0).
        case serverClosed(YamuxSessionCloseReason)
    }

    /// Runs sessions one after another: after a session ends, or a connection attempt fails,
    /// waits 0.5 s doubling to 30 s with jitter and tries again, without limit, when
    /// reconnecting is on (``Configuration/reconnect``, by default in named mode). A refused
    /// hello is never retried.
    /// - Parameter onEstablished: Called each time the server accepts the hello.
    /// - Throws: ``TunnelError`` when refused, or on a failure with reconnecting off.
    public func runReconnecting(onEstablished: @escaping @Sendable (Established) -> Void = { _ in }) async throws -> FinalEnding {
        let named = NIOLockedValueBox(configuration.name != nil)
        var backoff = TunnelReconnectBackoff()
        while true {
            let wasEstablished = NIOLockedValueBox(false)
            do {
                let ending = try await run { established in
                    wasEstablished.withLockedValue { $0 = true }
                    if established.publicURL != nil { named.withLockedValue { $0 = true } }
                    onEstablished(established)
                }
                switch ending {
                case .replaced:
                    return .replaced
                case .serverClosed(let reason):
                    guard configuration.reconnect ?? named.withLockedValue({ $0 }) else { return .serverClosed(reason) }
                    logger.warning("tunnel session ended; reconnecting", metadata: ["reason": "\(reason)"])
                }
            } catch TunnelError.refused(let reason) {
                throw TunnelError.refused(reason)
            } catch {
                guard configuration.reconnect ?? named.withLockedValue({ $0 }) else { throw error }
                logger.warning("cannot set up the tunnel; will retry", metadata: ["error": "\(error)"])
            }
            if wasEstablished.withLockedValue({ $0 }) { backoff.reset() }
            let delay = backoff.nextDelay(random: Double.random(in: 0..<1))
            logger.info("reconnecting", metadata: ["in_ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)"])
            try await Task.sleep(for: delay)
        }
    }

    /// Opens the control connection: TCP, then TLS when configured, then yamux (client role).
    /// The one place that knows how the server is reached (a WebSocket dialer slots in here).
    private func connectControl() async throws -> (any Channel, YamuxMultiplexer) {
        if let websocket = configuration.websocket { return try await connectControl(over: websocket) }
        let address = "\(configuration.serverHost):\(configuration.serverPort)"
        let multiplexerBox = MultiplexerSlot()
        let channel: any Channel
        let tls = configuration.tls
        let serverHost = configuration.serverHost
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(configuration.connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            // SNI carries names only, never an IP literal.
                            let isAddress = (try? SocketAddress(ipAddress: serverHost, port: 0)) != nil
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLClientHandler(context: tls, serverHostname: isAddress ? nil : serverHost))
                        }
                        multiplexerBox.set(try self.addSession(to: channel))
                    }
                }
                .connect(host: configuration.serverHost, port: configuration.serverPort).get()
        } catch {
            throw TunnelError.serverUnreachable(address, underlying: "\(error)")
        }
        guard let multiplexer = multiplexerBox.get() else {
            throw TunnelError.serverUnreachable(address, underlying: "connection set-up failed")
        }
        return (channel, multiplexer)
    }

    /// The control connection over WebSocket: the same yamux session in binary messages.
    private func connectControl(over address: WebSocketAddress) async throws -> (any Channel, YamuxMultiplexer) {
        let dialer = StreamDialer(proxy: configuration.proxy, stepTimeout: configuration.connectTimeout, group: group)
        let channel: any Channel
        do {
            channel = try await dialer.connectWebSocket(address, serverName: nil, caPath: configuration.websocketCAPath,
                                                        verify: configuration.verifyWebSocketServer) { [logger] ending in
                logger.info("websocket closed", metadata: ["close": "\(ending)"])
            }
        } catch {
            throw TunnelError.serverUnreachable("\(address)", underlying: "\(error)")
        }
        do {
            let multiplexer = try await channel.eventLoop.submit { try self.addSession(to: channel) }.get()
            return (channel, multiplexer)
        } catch {
            try? await channel.close()
            throw TunnelError.serverUnreachable("\(address)", underlying: "connection set-up failed: \(error)")
        }
    }

    /// The yamux session (client role) at the end of `channel`'s pipeline; every stream the
    /// server opens is bridged to the local service. On the channel's loop.
    private func addSession(to channel: any Channel) throws -> YamuxMultiplexer {
        let multiplexer = YamuxMultiplexer(role: .client, configuration: configuration.yamux, eventLoop: channel.eventLoop) { stream in
            self.bridgeToLocalService(stream)
            return true
        }
        try channel.pipeline.syncOperations.addHandler(multiplexer)
        return multiplexer
    }

    private func bridgeToLocalService(_ stream: YamuxStreamChannel) {
        let log = logger.with("stream", "\(stream.id)")
        let started = ContinuousClock.now
        let local = "\(configuration.localHost):\(configuration.localPort)"
        ClientBootstrap(group: stream.eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.autoRead, value: false)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let bridge = YamuxStreamBridge(stream: stream) { summary in
                        log.info("bridged connection closed", metadata: [
                            "local": "\(local)", "bytes_to_server": "\(summary.bytesToStream)",
                            "bytes_from_server": "\(summary.bytesFromStream)", "duration_ms": "\(milliseconds(since: started))",
                            "ending": "\(summary.ending)",
                        ])
                    }
                    try channel.pipeline.syncOperations.addHandler(bridge)
                }
            }
            .connect(host: configuration.localHost, port: configuration.localPort)
            .whenComplete { result in
                switch result {
                case .success:
                    log.info("bridged connection opened", metadata: ["local": "\(local)"])
                case .failure(let error):
                    log.error("local service unreachable; stream reset", metadata: ["local": "\(local)", "error": "\(error)"])
                    stream.reset()
                }
            }
    }
}

/// A lock-protected optional multiplexer, set by the channel initializer.
final class MultiplexerSlot: Sendable {
    private let box = NIOLockedValueBox<YamuxMultiplexer?>(nil)
    func set(_ multiplexer: YamuxMultiplexer) { box.withLockedValue { $0 = multiplexer } }
    func get() -> YamuxMultiplexer? { box.withLockedValue { $0 } }
}
