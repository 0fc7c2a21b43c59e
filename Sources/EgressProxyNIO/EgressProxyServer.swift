import EgressProxy
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Yamux
import YamuxNIO

/// `zrc-relay proxy server` (DESIGN §12): accepts agents over mutual TLS 1.3, runs yamux on
/// each connection and, for every stream an agent opens, reads `OPEN <host> <port>`, applies
/// the destination policy and the circuit breaker, dials, answers `OK` or `ERR`, then copies
/// bytes both ways.
public final class EgressProxyServer: Sendable {
    /// What the server needs; every default is in ``ProxyDefaults``.
    public struct Configuration: Sendable {
        public var listenHost: String = "0.0.0.0"
        public var listenPort: Int = 8443
        public var caPath: String
        public var certificatePath: String
        public var keyPath: String
        /// The parsed allow file; ``ProxyAllowList/default`` without one.
        public var allowList: ProxyAllowList = .default
        public var allowPrivate = false
        public var maximumStreams = ProxyDefaults.maximumStreams
        public var dialTimeout: Duration = ProxyDefaults.dialTimeout
        public var idleTimeout: Duration = ProxyDefaults.idleTimeout
        public var openLineTimeout: Duration = ProxyDefaults.openLineTimeout
        /// §12's 60 s; shorter only in tests (the hidden `--circuit-open-seconds`).
        public var circuitOpenDuration: Duration = ProxyDefaults.circuitOpenDuration
        public var yamux = YamuxConfiguration()

        public init(caPath: String, certificatePath: String, keyPath: String) {
            self.caPath = caPath
            self.certificatePath = certificatePath
            self.keyPath = keyPath
        }
    }

    let configuration: Configuration
    let group: any EventLoopGroup
    let logger: Logger
    /// The server's metrics (exported by `--metrics-listen`).
    public let metrics = ProxyMetrics()
    let breakers: NIOLockedValueBox<CircuitBreakerTable<String>>
    private let listener = NIOLockedValueBox<(any Channel)?>(nil)
    private let connections = NIOLockedValueBox<[ObjectIdentifier: YamuxMultiplexer]>([:])
    private let policyBox = NIOLockedValueBox(DestinationPolicy())
    private let serial = NIOLockedValueBox(0)
    /// Open streams per agent identity; an entry goes when its count reaches zero.
    private let streamsByAgent = NIOLockedValueBox<[String: Int]>([:])

    public init(configuration: Configuration, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.breakers = NIOLockedValueBox(CircuitBreakerTable(openDuration: configuration.circuitOpenDuration))
    }

    var policy: DestinationPolicy { policyBox.withLockedValue { $0 } }

    /// Destinations whose circuit refuses now (for the metric).
    public var openCircuits: Int { breakers.withLockedValue { $0.openCount(now: .now) } }

    /// Binds the listener; returns the bound address.
    public func start() async throws -> SocketAddress {
        let sslContext = try ProxyTLS.serverContext(caPath: configuration.caPath, certificatePath: configuration.certificatePath,
                                                    keyPath: configuration.keyPath)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.initializeAgentConnection(channel, sslContext: sslContext)
                }
            }
            .bind(host: configuration.listenHost, port: configuration.listenPort).get()
        listener.withLockedValue { $0 = channel }
        guard let local = channel.localAddress else { return try SocketAddress(ipAddress: "0.0.0.0", port: configuration.listenPort) }
        // Never dial ourselves: the listen port on our own address (or loopback/any for a
        // wildcard listener) is refused whatever the policy says.
        var selfAddresses: [ProxyIPAddress] = []
        if let own = ProxyResolver.proxyAddress(local) { selfAddresses.append(own) }
        let port = local.port ?? configuration.listenPort
        policyBox.withLockedValue {
            $0 = DestinationPolicy(allowList: configuration.allowList, allowPrivate: configuration.allowPrivate,
                                   selfAddresses: selfAddresses, selfPorts: [port])
        }
        logger.info("proxy server listening", metadata: [
            "listen": "\(local)", "allow_private": "\(configuration.allowPrivate)", "max_streams": "\(configuration.maximumStreams)",
            "allow_entries": "\(configuration.allowList.entries.count)",
        ])
        return local
    }

    /// Serves `/metrics` and `/health` on `host:port`; returns the bound channel.
    public func startMetrics(host: String, port: Int) async throws -> any Channel {
        try await ProxyMetricsEndpoint.start(host: host, port: port, group: group) {
            self.metrics.render(openCircuits: self.openCircuits)
        }
    }

    /// Stops accepting and ends every agent session.
    public func shutdown() async {
        let channel = listener.withLockedValue { $0 }
        try? await channel?.close()
        for multiplexer in connections.withLockedValue({ Array($0.values) }) { multiplexer.close() }
    }

    /// Returns when the listener is closed.
    public func waitUntilClosed() async throws {
        guard let channel = listener.withLockedValue({ $0 }) else { return }
        try await channel.closeFuture.get()
    }

    /// Takes one of the agent's `--max-streams` slots; `false` when all are taken.
    func claimStream(for identity: String) -> Bool {
        streamsByAgent.withLockedValue { counts in
            let current = counts[identity, default: 0]
            guard current < configuration.maximumStreams else { return false }
            counts[identity] = current + 1
            return true
        }
    }

    func releaseStream(for identity: String) {
        streamsByAgent.withLockedValue { counts in
            let left = counts[identity, default: 1] - 1
            counts[identity] = left > 0 ? left : nil
        }
    }

    private func initializeAgentConnection(_ channel: any Channel, sslContext: NIOSSLContext) throws {
        let number = serial.withLockedValue { $0 += 1; return $0 }
        let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let log = logger.with("zrc.conn.id", "\(number)").with("zrc.peer.addr", remote)
        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
        try channel.pipeline.syncOperations.addHandler(HandshakeGate(logger: log) { context, identity in
            self.startSession(channel: context.channel, identity: identity, logger: log.with("zrc.agent", identity))
        })
    }

    /// After the handshake: yamux, and a ``ProxyServerStream`` for every stream.
    private func startSession(channel: any Channel, identity: String, logger: Logger) {
        let loop = channel.eventLoop
        var yamux = configuration.yamux
        // Streams past --max-streams are answered `busy`; a few more may exist while those
        // answers drain, and yamux itself refuses anything beyond.
        yamux.maximumStreams = configuration.maximumStreams + 16
        let multiplexer = YamuxMultiplexer(role: .server, configuration: yamux, eventLoop: loop) { stream in
            let handler = ProxyServerStream(server: self, stream: stream, agent: identity, logger: logger)
            // --max-streams counts per agent identity (its CN), over all its connections.
            guard self.claimStream(for: identity) else {
                handler.refuseBusy()
                return true
            }
            stream.closeFuture.whenComplete { _ in self.releaseStream(for: identity) }
            handler.start()
            return true
        }
        let key = ObjectIdentifier(multiplexer)
        connections.withLockedValue { $0[key] = multiplexer }
        do {
            try channel.pipeline.syncOperations.addHandler(multiplexer)
        } catch {
            logger.warning("cannot start the agent session", metadata: ["error": "\(error)"])
            channel.close(promise: nil)
            return
        }
        logger.info("agent connected")
        multiplexer.sessionClosed.whenComplete { result in
            self.connections.withLockedValue { _ = $0.removeValue(forKey: key) }
            logger.info("agent disconnected", metadata: ["reason": "\((try? result.get()).map { "\($0)" } ?? "error")"])
        }
    }
}
