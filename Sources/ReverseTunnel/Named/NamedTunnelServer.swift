import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Yamux
import YamuxNIO

/// `zrc-relay tunnel server --http-port … --domain …`: named HTTP tunnels (DESIGN §11).
///
/// Many tunnel clients connect to the control port, each with a name; public HTTP (and
/// HTTPS, by SNI) connections are routed by `Host` to the client serving
/// `<name>.<domain>`, which bridges each to its local service. The pure parts — names,
/// tokens, the registry, routing, header rewriting — are in their own types; this class
/// only carries out their decisions on sockets.
public final class NamedTunnelServer: Sendable {
    /// Ports, domain, tokens, TLS and timers.
    public struct Configuration: Sendable {
        /// Address every listener binds.
        public var listenHost: String = "0.0.0.0"
        /// Port of the control listener (tunnel clients).
        public var controlPort: Int = 4444
        /// Port of the public HTTP listener (`nil`: none).
        public var httpPort: Int? = 8080
        /// Port of the public HTTPS listener (`nil`: none); needs ``publicTLS``.
        public var httpsPort: Int?
        /// The wildcard certificate for `*.<domain>` on the HTTPS port.
        public var publicTLS: NIOSSLContext?
        /// TLS for the control connections; clear text when `nil`.
        public var controlTLS: NIOSSLContext?
        /// `--websocket`: the control port also takes a WebSocket upgrade at this path.
        public var websocketPath: String?
        /// The tunnels' domain.
        public var domain: String = "localhost"
        /// Which tokens are accepted.
        public var tokens: TunnelTokens = .open
        /// How long a client has to say hello.
        public var helloTimeout: TimeAmount = NamedTunnelDefaults.helloTimeout
        /// How long a request head may take to arrive (DESIGN §11: 10 s).
        public var headTimeout: TimeAmount = NamedTunnelDefaults.headTimeout
        /// How long the local service may take to send a response head (DESIGN §11: 30 s).
        public var responseTimeout: TimeAmount = NamedTunnelDefaults.responseTimeout
        /// How long a request body may pause (DESIGN §11 is silent; a caller that stops
        /// mid-body must not hold its connection and stream for ever).
        public var bodyIdleTimeout: TimeAmount = NamedTunnelDefaults.bodyIdleTimeout
        /// The largest request head (DESIGN §11: 64 KiB).
        public var maximumHeadLength: Int = NamedTunnelDefaults.maximumHeadLength
        /// How long a vanished client's name is held (DESIGN §11: 30 s).
        public var holdDuration: Duration = NamedTunnelDefaults.holdDuration
        /// Yamux limits and keepalive for the control connections.
        public var yamux = YamuxConfiguration()
        /// Where the metrics are counted (also served by the CLI's `--metrics-listen`).
        public var metrics: TunnelMetrics?

        public init() {}
    }

    /// One connected and accepted tunnel client.
    final class NamedClient: Sendable {
        let serial: Int
        let name: TunnelName
        let multiplexer: YamuxMultiplexer
        let helloStream: YamuxStreamChannel
        init(serial: Int, name: TunnelName, multiplexer: YamuxMultiplexer, helloStream: YamuxStreamChannel) {
            self.serial = serial
            self.name = name
            self.multiplexer = multiplexer
            self.helloStream = helloStream
        }

        /// `REPLACED` on the hello stream, GoAway(normal), then the close (DESIGN §9 v3).
        func replace() {
            helloStream.write(ByteBuffer(string: TunnelHello.replaced))
            helloStream.closeWrite()
            multiplexer.goAway()
            multiplexer.eventLoop.scheduleTask(in: .milliseconds(200)) { self.multiplexer.close() }
        }
    }

    struct State {
        var registry: TunnelRegistry<Int>
        var clients: [Int: NamedClient] = [:]
        var nextSerial = 0
    }

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    private let channels = NIOLockedValueBox<[any Channel]>([])
    private let sweep = NIOLockedValueBox<RepeatedTask?>(nil)

    /// - Parameters:
    ///   - configuration: Ports, domain, tokens, timers.
    ///   - group: Event loops for every listener and connection.
    ///   - logger: Where connects, disconnects and the access log go.
    public init(configuration: Configuration, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        var registryConfiguration = TunnelRegistry<Int>.Configuration()
        registryConfiguration.holdDuration = configuration.holdDuration
        self.state = NIOLockedValueBox(State(registry: TunnelRegistry(
            reservedNames: configuration.tokens.reservedNames, configuration: registryConfiguration)))
    }

    /// The bound ports.
    public struct Ports: Sendable {
        public var control: Int
        public var http: Int?
        public var https: Int?
    }

    /// Binds the listeners.
    public func start() async throws -> Ports {
        let control = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try self.initializeControl(channel) }
            }
            .bind(host: configuration.listenHost, port: configuration.controlPort).get()
        var bound: [any Channel] = [control]
        var ports = Ports(control: control.localAddress?.port ?? 0)
        let router = TunnelHostRouter(domain: configuration.domain)
        if let httpPort = configuration.httpPort {
            let shared = listenerContext(router: router, proto: "http")
            let listener = try await publicBootstrap(autoRead: false) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(PublicHTTPHandler(shared: shared, serverName: nil))
                }
            }.bind(host: configuration.listenHost, port: httpPort).get()
            bound.append(listener)
            ports.http = listener.localAddress?.port
        }
        if let httpsPort = configuration.httpsPort, let tls = configuration.publicTLS {
            let shared = listenerContext(router: router, proto: "https")
            let handshakeTimeout = configuration.headTimeout
            let listener = try await publicBootstrap(autoRead: true) { channel in
                // Until the ClientHello names a server, the head timer is not running yet: a
                // connection that never sends one is closed after the head timeout.
                let helloTimer = channel.eventLoop.scheduleTask(in: handshakeTimeout) { channel.close(promise: nil) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(SNIHandler { result in
                        helloTimer.cancel()
                        var serverName: TunnelName?
                        if case .hostname(let host) = result, case .name(let name) = router.route(serverName: host) {
                            serverName = name
                        }
                        return channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                            try channel.pipeline.syncOperations.addHandler(PublicHTTPHandler(shared: shared, serverName: serverName))
                        }
                    }))
                }
            }.bind(host: configuration.listenHost, port: httpsPort).get()
            bound.append(listener)
            ports.https = listener.localAddress?.port
        }
        channels.withLockedValue { $0 = bound }
        let interval = TimeAmount.milliseconds(max(100, min(1000, Int64(configuration.holdDuration.components.seconds * 1000) / 4)))
        let task = group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in self.expireHeldNames() }
        sweep.withLockedValue { $0 = task }
        logger.info("named tunnel server listening", metadata: [
            "control": "\(configuration.listenHost):\(ports.control)",
            "http": "\(ports.http.map(String.init) ?? "-")", "https": "\(ports.https.map(String.init) ?? "-")",
            "domain": "\(router.domain)", "tokens": "\(configuration.tokens)", "control_tls": "\(configuration.controlTLS != nil)",
        ])
        if configuration.tokens.requiresToken, configuration.controlTLS == nil {
            logger.warning("tokens travel in clear text: use --tls-cert/--tls-key on untrusted networks")
        }
        publicPorts.withLockedValue { $0 = ports }
        return ports
    }

    private let publicPorts = NIOLockedValueBox<Ports?>(nil)

    /// Runs until every listener is closed.
    public func waitUntilClosed() async throws {
        for channel in channels.withLockedValue({ $0 }) {
            try await channel.closeFuture.get()
        }
    }

    /// Closes the listeners and every client session.
    public func shutdown() async {
        sweep.withLockedValue { $0?.cancel(); $0 = nil }
        for channel in channels.withLockedValue({ $0 }) {
            try? await channel.close()
        }
        for client in state.withLockedValue({ Array($0.clients.values) }) { client.multiplexer.close() }
    }

    /// The number of names with a client (for tests).
    public var activeCount: Int { state.withLockedValue { $0.registry.activeCount } }

    // MARK: Public side

    /// - Parameter autoRead: Off for HTTP (the handler reads); on for HTTPS until the handler
    ///   is added after the TLS server name was read (it then turns it off).
    private func publicBootstrap(
        autoRead: Bool, _ initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: autoRead)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer(initializer)
    }

    private func listenerContext(router: TunnelHostRouter, proto: String) -> PublicListenerContext {
        PublicListenerContext(
            router: router, proto: proto, headTimeout: configuration.headTimeout, responseTimeout: configuration.responseTimeout,
            maximumHeadLength: configuration.maximumHeadLength, bodyIdleTimeout: configuration.bodyIdleTimeout,
            metrics: configuration.metrics, logger: logger, resolve: { name in self.resolve(name) })
    }

    private func resolve(_ name: TunnelName) -> TunnelResolution {
        let now = ContinuousClock.now
        let client: NamedClient? = state.withLockedValue { state in
            switch state.registry.route(name, now: now) {
            case .client(let serial): return state.clients[serial]
            case .noClient, .unknown: return nil
            }
        }
        if let client { return .stream(client.multiplexer.openStream()) }
        switch state.withLockedValue({ $0.registry.route(name, now: now) }) {
        case .unknown: return .error(.unknownTunnel)
        case .noClient, .client: return .error(.noClient)
        }
    }

    private func expireHeldNames() {
        let freed = state.withLockedValue { $0.registry.expire(now: .now) }
        for name in freed { logger.info("held tunnel name freed", metadata: ["tunnel.name": "\(name)"]) }
    }

    // MARK: Control side

    private func initializeControl(_ channel: any Channel) throws {
        let serial = state.withLockedValue { $0.nextSerial += 1; return $0.nextSerial }
        let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let log = logger.with("tunnel.client", "\(serial)").with("peer.addr", "\(remote)")
        let helloTimeout = configuration.helloTimeout
        let loop = channel.eventLoop
        let accepted = NIOLoopBoundBox.makeBoxSendingValue(false, eventLoop: loop)
        let current = NIOLoopBoundBox<NamedClient?>.makeEmptyBox(eventLoop: loop)
        let multiplexerSlot = MultiplexerSlot()
        let multiplexer = YamuxMultiplexer(role: .server, configuration: configuration.yamux, eventLoop: loop) { stream in
            guard stream.id == 1, let multiplexer = multiplexerSlot.get() else { return false }
            TunnelLineReader.readLine(from: stream, timeout: helloTimeout).whenComplete { result in
                let outcome: HelloOutcome
                switch result {
                case .success(let line): outcome = self.admit(line: line, serial: serial, multiplexer: multiplexer, stream: stream)
                case .failure(let error): outcome = .denied("\(error)")
                }
                switch outcome {
                case .accepted(let client, let url, let replaced):
                    accepted.value = true
                    current.value = client
                    stream.write(ByteBuffer(string: NamedTunnelHello.accepted(publicURL: url)))
                    log.info("tunnel connected", metadata: ["tunnel.name": "\(client.name)", "url": "\(url)"])
                    self.updateActive()
                    if let replaced {
                        log.info("tunnel client replaced by a newer one; dropped",
                                 metadata: ["tunnel.name": "\(client.name)", "replaced.client": "\(replaced.serial)"])
                        replaced.multiplexer.eventLoop.execute { replaced.replace() }
                    }
                case .denied(let reason):
                    stream.write(ByteBuffer(string: NamedTunnelHello.denied(reason)))
                    stream.closeWrite()
                    log.warning("tunnel client refused", metadata: ["reason": "\(reason)"])
                    multiplexer.goAway()
                    loop.scheduleTask(in: .milliseconds(200)) { multiplexer.close() }
                }
            }
            return true
        }
        multiplexerSlot.set(multiplexer)
        try TunnelControlPipeline.install(on: channel, tls: configuration.controlTLS, websocketPath: configuration.websocketPath,
                                          multiplexer: multiplexer, logger: log)
        log.debug("tunnel client connected; waiting for its hello")
        loop.scheduleTask(in: helloTimeout) {
            if !accepted.value {
                log.warning("tunnel client sent no hello in time; closing")
                multiplexer.close()
                channel.close(promise: nil)  // also when yamux has not started (a WebSocket still upgrading)
            }
        }
        multiplexer.sessionClosed.whenSuccess { reason in
            guard let client = current.value else { return }
            let release = self.state.withLockedValue { state -> TunnelRegistry<Int>.ReleaseResult in
                state.clients[serial] = nil
                return state.registry.release(client.name, client: serial, now: .now)
            }
            self.updateActive()
            switch release {
            case .held:
                log.info("tunnel disconnected; name held", metadata: [
                    "tunnel.name": "\(client.name)", "reason": "\(reason)",
                    "held_s": "\(self.configuration.holdDuration.components.seconds)",
                ])
            case .notCurrent:
                log.info("tunnel disconnected", metadata: ["tunnel.name": "\(client.name)", "reason": "\(reason)"])
            }
        }
    }

    enum HelloOutcome {
        case accepted(NamedClient, url: String, replaced: NamedClient?)
        case denied(String)
    }

    /// Checks a hello against the tokens and the registry and, when accepted, records the
    /// client.
    private func admit(line: [UInt8], serial: Int, multiplexer: YamuxMultiplexer, stream: YamuxStreamChannel) -> HelloOutcome {
        let request: NamedTunnelHello.Request
        switch NamedTunnelHello.parse(line: line) {
        case .refused(let reason): return .denied(reason)
        case .request(let parsed): request = parsed
        }
        let tokens = configuration.tokens
        if request.name == nil, !tokens.allowsRandomNames {
            return .denied("this server needs --name (its tokens are per name)")
        }
        return state.withLockedValue { state -> HelloOutcome in
            let now = ContinuousClock.now
            let name: TunnelName
            if let requested = request.name {
                name = requested
            } else {
                var generator = SystemRandomNumberGenerator()
                var candidate = TunnelName.random(using: &generator)
                var tries = 0
                while state.registry.isTaken(candidate, now: now), tries < 16 {
                    candidate = TunnelName.random(using: &generator)
                    tries += 1
                }
                guard !state.registry.isTaken(candidate, now: now) else { return .denied("no free random name") }
                name = candidate
            }
            if case .denied(let reason) = tokens.authorize(name: name, token: request.token) { return .denied(reason) }
            switch state.registry.claim(name, token: request.token, client: serial, now: now) {
            case .denied(let reason):
                return .denied(reason)
            case .accepted(let replacedSerial):
                let client = NamedClient(serial: serial, name: name, multiplexer: multiplexer, helloStream: stream)
                state.clients[serial] = client
                let replaced = replacedSerial.flatMap { state.clients.removeValue(forKey: $0) }
                return .accepted(client, url: publicURL(for: name), replaced: replaced)
            }
        }
    }

    /// `http://<name>.<domain>[:port]/` (or `https://` when only HTTPS listens).
    private func publicURL(for name: TunnelName) -> String {
        let ports = publicPorts.withLockedValue { $0 }
        let domain = TunnelHostRouter(domain: configuration.domain).domain
        if let http = ports?.http ?? configuration.httpPort {
            return "http://\(name).\(domain)\(http == 80 ? "" : ":\(http)")/"
        }
        let https = ports?.https ?? configuration.httpsPort ?? 443
        return "https://\(name).\(domain)\(https == 443 ? "" : ":\(https)")/"
    }

    private func updateActive() {
        configuration.metrics?.setActive(activeCount)
    }
}
