import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
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
        /// Yamux limits and keepalive.
        public var yamux = YamuxConfiguration()

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

    /// Connects, says hello and serves until the session ends.
    /// - Returns: How the session ended.
    /// - Throws: ``TunnelError`` when the server is unreachable or refuses the hello.
    public func run() async throws -> Ending {
        let address = "\(configuration.serverHost):\(configuration.serverPort)"
        let multiplexerBox = MultiplexerSlot()
        let replaced = NIOLockedValueBox(false)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(configuration.connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let multiplexer = YamuxMultiplexer(
                            role: .client, configuration: self.configuration.yamux, eventLoop: channel.eventLoop
                        ) { stream in
                            self.bridgeToLocalService(stream)
                            return true
                        }
                        multiplexerBox.set(multiplexer)
                        try channel.pipeline.syncOperations.addHandler(multiplexer)
                    }
                }
                .connect(host: configuration.serverHost, port: configuration.serverPort).get()
        } catch {
            throw TunnelError.serverUnreachable(address, underlying: "\(error)")
        }
        guard let multiplexer = multiplexerBox.get() else {
            throw TunnelError.serverUnreachable(address, underlying: "connection set-up failed")
        }
        do {
            let hello = try await multiplexer.openStream().get()
            hello.write(ByteBuffer(string: TunnelHello.request(token: configuration.token)))
            hello.closeWrite()
            let answer = try await TunnelLineReader.readLine(from: hello, timeout: configuration.connectTimeout).get()
            if let reason = TunnelHello.refusal(inAnswer: answer) {
                multiplexer.close()
                throw TunnelError.refused(reason)
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
        ])
        let reason = try await multiplexer.sessionClosed.get()
        _ = try? await channel.closeFuture.get()
        return replaced.withLockedValue { $0 } ? .replaced : .serverClosed(reason)
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
