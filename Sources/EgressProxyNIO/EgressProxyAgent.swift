import EgressProxy
import RelayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Yamux
import YamuxNIO

/// `zrc-relay proxy agent` (DESIGN §12): a local HTTP/1.1 proxy whose every client
/// connection is one yamux stream over one mutual-TLS connection to the proxy server.
///
/// Everything runs on one event loop (the listener, the client connections, the tunnel), so
/// a client connection, its stream and the tunnel never race each other.
public final class EgressProxyAgent: Sendable {
    /// What the agent needs; defaults are in ``ProxyDefaults``.
    public struct Configuration: Sendable {
        public var serverHost: String
        public var serverPort: Int
        public var listenHost = "127.0.0.1"
        public var listenPort = 8080
        public var caPath: String
        public var certificatePath: String
        public var keyPath: String
        /// Run after every ``ProxyDefaults/discoverAfterFailures`` consecutive failed connects;
        /// prints a new `host:port`.
        public var discoverCommand: String?
        public var backoff = ExponentialBackoff(base: ProxyDefaults.reconnectBase, cap: ProxyDefaults.reconnectCap, jitter: .equal)
        public var connectTimeout: Duration = .seconds(10)
        public var replyTimeout: Duration = ProxyDefaults.replyTimeout
        public var yamux = YamuxConfiguration()

        public init(serverHost: String, serverPort: Int, caPath: String, certificatePath: String, keyPath: String) {
            self.serverHost = serverHost
            self.serverPort = serverPort
            self.caPath = caPath
            self.certificatePath = certificatePath
            self.keyPath = keyPath
        }
    }

    /// Why the agent stopped for good.
    public struct Unrecoverable: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    struct State {
        var tunnel: YamuxMultiplexer?
        var serverHost: String
        var serverPort: Int
        var openClients = 0
        var stopping = false
        var listener: (any Channel)?
    }

    let configuration: Configuration
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    var loop: any EventLoop { group.next() }
    private let state: NIOLockedValueBox<State>
    private let sslContext: NIOSSLContext

    /// Reads the TLS files (a bad file throws ``ProxyTLS/FileError``).
    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.sslContext = try ProxyTLS.clientContext(caPath: configuration.caPath, certificatePath: configuration.certificatePath,
                                                     keyPath: configuration.keyPath)
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.state = NIOLockedValueBox(State(serverHost: configuration.serverHost, serverPort: configuration.serverPort))
    }

    /// The tunnel when it is up.
    var currentTunnel: YamuxMultiplexer? { state.withLockedValue { $0.tunnel } }

    /// Binds the local proxy port; returns the bound address.
    public func listen() async throws -> SocketAddress {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    self.state.withLockedValue { $0.openClients += 1 }
                    channel.closeFuture.whenComplete { _ in self.state.withLockedValue { $0.openClients -= 1 } }
                    try channel.pipeline.syncOperations.addHandler(AgentConnectionHandler(agent: self))
                }
            }
            .bind(host: configuration.listenHost, port: configuration.listenPort).get()
        state.withLockedValue { $0.listener = channel }
        let local = channel.localAddress
        logger.info("proxy agent listening", metadata: ["listen": "\(local.map { "\($0)" } ?? "?")"])
        guard let local else { throw Unrecoverable(description: "the listener has no address") }
        return local
    }

    /// Keeps the tunnel up until ``shutdown(grace:)``: connects at once, then reconnects with
    /// backoff, running `--discover-cmd` after every few consecutive failures.
    /// - Throws: ``Unrecoverable`` when the server refuses our certificate or its own does
    ///   not verify.
    public func run() async throws {
        var failures = 0
        var attempt = 0
        var first = true
        while !state.withLockedValue({ $0.stopping }) {
            if !first {
                let delay = configuration.backoff.delay(attempt: attempt, unit: Double.random(in: 0..<1))
                attempt += 1
                do { try await Task.sleep(for: delay) } catch { return }
                if state.withLockedValue({ $0.stopping }) { return }
            }
            first = false
            let (host, port) = state.withLockedValue { ($0.serverHost, $0.serverPort) }
            do {
                let tunnel = try await connect(host: host, port: port)
                failures = 0
                attempt = 0
                state.withLockedValue { $0.tunnel = tunnel }
                logger.info("tunnel up", metadata: ["server": "\(host):\(port)"])
                let reason = try? await tunnel.sessionClosed.get()
                state.withLockedValue { if $0.tunnel === tunnel { $0.tunnel = nil } }
                if state.withLockedValue({ $0.stopping }) { return }
                logger.warning("tunnel down; reconnecting", metadata: ["reason": "\(reason.map { "\($0)" } ?? "error")"])
            } catch let error as Unrecoverable {
                throw error
            } catch {
                failures += 1
                logger.warning("cannot reach the proxy server", metadata: [
                    "server": "\(host):\(port)", "error": "\(error)", "consecutive_failures": "\(failures)",
                ])
                if failures % ProxyDefaults.discoverAfterFailures == 0, let command = configuration.discoverCommand {
                    await discover(command)
                }
            }
        }
    }

    private func discover(_ command: String) async {
        let outcome = await ShellCommand.run(command)
        let candidate = outcome.output.split(whereSeparator: \.isNewline).last.map { String($0.filter { $0 != " " && $0 != "\t" }) } ?? ""
        guard outcome.status == 0, let (host, port) = Self.parseHostPort(candidate) else {
            logger.warning("--discover-cmd gave no usable host:port", metadata: ["status": "\(outcome.status.map { "\($0)" } ?? "killed")"])
            return
        }
        state.withLockedValue {
            $0.serverHost = host
            $0.serverPort = port
        }
        logger.notice("--discover-cmd found a server", metadata: ["server": "\(host):\(port)"])
    }

    /// Splits `host:port` (`[v6]:port`).
    public static func parseHostPort(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = ProxyLine.parsePort(text[text.index(after: colon)...].utf8) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" }) else { return nil }
        return (host, port)
    }

    /// One connection attempt: TCP, TLS, yamux, and a ping that proves the server accepted
    /// our certificate (with TLS 1.3 its refusal arrives only after our side finished).
    func connect(host: String, port: Int) async throws -> YamuxMultiplexer {
        let slot = NIOLockedValueBox<YamuxMultiplexer?>(nil)
        let recorded = NIOLockedValueBox<(any Error)?>(nil)
        let sslContext = self.sslContext
        let yamux = configuration.yamux
        let serverName: String? = ProxyIPAddress(host) == nil ? host : nil
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(TimeAmount(configuration.connectTimeout))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                        try channel.pipeline.syncOperations.addHandler(TLSErrorRecorder(recorded))
                        let multiplexer = YamuxMultiplexer(role: .client, configuration: yamux, eventLoop: channel.eventLoop) { _ in false }
                        slot.withLockedValue { $0 = multiplexer }
                        try channel.pipeline.syncOperations.addHandler(multiplexer)
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            throw ConnectFailure(description: "\(error)")
        }
        guard let multiplexer = slot.withLockedValue({ $0 }) else {
            channel.close(promise: nil)
            throw ConnectFailure(description: "connection set-up failed")
        }
        let ping = multiplexer.ping()
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(10)) { multiplexer.close() }
        defer { timeout.cancel() }
        do {
            _ = try await ping.get()
            return multiplexer
        } catch {
            multiplexer.close()
            _ = try? await channel.closeFuture.get()
            if let tlsError = recorded.withLockedValue({ $0 }) {
                if ProxyTLS.isHandshakeRefusal(tlsError) {
                    throw Unrecoverable(description: "TLS with the proxy server at \(host):\(port) failed: \(tlsError)")
                }
                throw ConnectFailure(description: "\(tlsError)")
            }
            throw ConnectFailure(description: "\(error)")
        }
    }

    struct ConnectFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// Graceful shutdown: stop accepting, let open client connections finish for up to
    /// `grace`, then end the tunnel.
    public func shutdown(grace: Duration = ProxyDefaults.shutdownGrace) async {
        let listener = state.withLockedValue { state -> (any Channel)? in
            state.stopping = true
            return state.listener
        }
        try? await listener?.close()
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline, state.withLockedValue({ $0.openClients }) > 0 {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let left = state.withLockedValue { $0.openClients }
        if left > 0 { logger.notice("shutdown grace over; closing open connections", metadata: ["open": "\(left)"]) }
        if let tunnel = state.withLockedValue({ $0.tunnel }) {
            tunnel.close()
            _ = try? await tunnel.sessionClosed.get()
        }
        try? await group.shutdownGracefully()
    }
}
