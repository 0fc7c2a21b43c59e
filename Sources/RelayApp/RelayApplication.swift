import Foundation
import Hummingbird
import Logging
import NIOCore
import QUICTransport
import RelayAdmin
import RelayConfig
import RelayFallback
import RelayEngine
import RedisProtocol
import RedisSharedState
import ServiceLifecycle
import SharedState

/// The relay process as one `Service`: it turns checked settings into the core's
/// configuration, owns the services — the HTTP endpoints (`/health`, `/ready`, `/metrics`),
/// SIGHUP reload, and the relay itself (QUIC, then the TCP fallback) — and runs them as one
/// service group, so that graceful shutdown (SIGTERM/SIGINT, or a parent group's) drains the
/// relay before anything stops. `zrc-relay serve` only parses arguments and runs this.
public struct RelayApplication: Service {
    /// Reads the configuration again for a reload, keeping `pinned` keys at their running values.
    public typealias ConfigurationSource = @Sendable (_ pinned: [String: RawConfigValue?]) throws(ConfigError)
        -> (RelaySettingsLoader, RelaySettings)

    /// The relay (bound when the application is made; serving once `run` starts it).
    public let server: RelayServer
    /// The admin API's backend (revocations, API block list, events), also when the admin
    /// listener is off: stored revocations apply either way.
    let admin: RelayAdminAPI
    /// The settings it runs with.
    public let settings: RelaySettings
    let services: [any Service]
    private let handlesSignals: Bool
    private let logger: Logger

    /// Builds everything and binds the relay's UDP socket; nothing serves until `run`.
    /// - Parameters:
    ///   - configuration: what `StartChecks.run(settings)` returned for these settings.
    ///   - reread: how SIGHUP reads the configuration again.
    ///   - handlesSignals: whether SIGTERM/SIGINT start the graceful shutdown (off in tests,
    ///     which trigger it through their parent task).
    ///   - drainTimeout: how long the drain waits for clients to leave.
    public init(loader: RelaySettingsLoader, settings: RelaySettings, configuration checked: RelayServerConfiguration,
                reread: @escaping ConfigurationSource, logger: Logger, level: LogLevelBox,
                handlesSignals: Bool = true, drainTimeout: Duration = .seconds(30)) throws {
        var configuration = checked
        try Self.prepareDevelopmentFiles(settings, logger: logger)
        if let developer = StartChecks.developmentSigner(settings) {
            configuration.tokens.trustedKeys.insert(developer)
            Self.announceDevelopmentMode(settings, logger: logger)
        }
        guard let bindAddress = TransportAddress(ipAddress: settings.server.listenAddress, port: settings.server.listenPort) else {
            throw RelayAppError("server.listen_addr: '\(settings.server.listenAddress)' is not an IP address")
        }
        if configuration.tokens.trustedKeys.isEmpty {
            logger.warning("no trusted keys configured (auth.trusted_keys / auth.trusted_keys_file): every ALLOCATE will be refused with untrusted_key")
        }
        let server = try RelayServer(quic: settings.quicConfiguration(), bindAddress: bindAddress,
                                     configuration: configuration, logger: logger)
        let current = CurrentConfiguration((loader, settings, configuration))
        let adminToken = try StartChecks.adminToken(settings)
        let instanceID = settings.server.instanceID ?? Self.randomInstanceID()
        let fleet = try Self.fleetService(settings, server: server, instanceID: instanceID, logger: logger)
        let admin = RelayAdminAPI(server: server, revocations: try StartChecks.revocationStore(settings), token: adminToken,
                                  current: current, level: level, instanceID: instanceID,
                                  region: settings.server.region, fleet: fleet, logger: logger)
        server.eventSink = { [admin] event in admin.publish(event) }
        self.admin = admin
        let backend = RelayBackend(server: server, metrics: RelayMetrics(region: settings.server.region), fleet: fleet)
        let http = Application(
            router: HealthRouter.make(backend: backend),
            // An HTTP connection idle this long is closed: scrapers reconnect, idle sockets
            // cannot pile up (DESIGN §6: every listener bounds what a peer can hold).
            server: .http1(configuration: .init(idleTimeout: TimeAmount(HealthRouter.idleTimeout))),
            configuration: .init(address: .hostname(settings.metricsListen.host, port: Int(settings.metricsListen.port)),
                                 serverName: "zrc-relay"),
            logger: logger)
        self.server = server
        self.settings = settings
        self.logger = logger
        self.handlesSignals = handlesSignals
        var reload = ConfigReloadService(reread: reread, current: current, server: server, level: level, logger: logger)
        reload.onReload = { [admin] settings in
            if let token = try? StartChecks.adminToken(settings) { admin.replaceToken(token) }
        }
        var relay = RelayService(server: server, logger: logger, fallbacks: settings.fallbackConfigurations, drainTimeout: drainTimeout)
        relay.afterStart = { [admin] in await admin.applyStoredRevocations() }
        if let fleet { relay.handOver = { await fleet.handOver() } }
        // Started in this order, shut down in reverse: the relay drains first, the fleet's
        // hand-over, the admin API and the HTTP endpoints stay up while it does.
        var services: [any Service] = [http]
        if let fleet { services.append(fleet) }
        if settings.admin.enabled {
            if let listen = settings.admin.listen {
                services.append(Self.adminApplication(admin: admin, listen: listen, logger: logger))
            }
            if let path = settings.admin.unixSocket {
                services.append(AdminSocketService(path: path, admin: admin, logger: logger))
            }
            services.append(AdminSweepService(api: admin))
        }
        services.append(reload)
        services.append(relay)
        self.services = services
    }

    /// Serves until graceful shutdown, drains, and returns.
    public func run() async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: handlesSignals ? [.sigterm, .sigint] : [],
                logger: logger))
        try await group.run()
    }

    /// The admin listener (`admin.listen`): Hummingbird with the `AdminResponder`. Idle
    /// connections close after 30 s; an event stream stays open while events flow.
    static func adminApplication(admin: RelayAdminAPI, listen: HostPort, logger: Logger) -> any Service {
        adminApplication(admin: admin, address: .hostname(listen.host, port: Int(listen.port)), logger: logger)
    }

    /// The admin API's Hummingbird application on `address` (TCP or the Unix socket).
    static func adminApplication(admin: RelayAdminAPI, address: BindAddress, logger: Logger,
                                 onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) -> some Service {
        Application(
            responder: AdminResponder(backend: admin, logger: logger),
            server: .http1(configuration: .init(idleTimeout: .seconds(30))),
            configuration: .init(address: address, serverName: "zrc-relay-admin"),
            onServerRunning: onServerRunning,
            logger: logger)
    }

    /// With `redis.url`: the relay joins the fleet through Redis and the returned service keeps
    /// it there. Without: the embedded in-memory state (this instance owns every allocation).
    static func fleetService(_ settings: RelaySettings, server: RelayServer, instanceID: String, logger: Logger) throws -> FleetService? {
        // A lease outlives 3 renewals; renewals come with the usage sync, so a long flush
        // interval lengthens it (an owner's death is still noticed by its heartbeat).
        let leaseTTL = max(settings.redis.heartbeatInterval, settings.redis.usageFlushInterval) * 3
        guard let url = try StartChecks.redisURL(settings) else {
            server.fleet = FleetMembership(state: InMemorySharedState(), instanceID: instanceID, leaseTTL: leaseTTL)
            return nil
        }
        // A call that takes longer than a heartbeat interval counts as a failure: `/ready`
        // turns 503 within 2 intervals even when Redis hangs instead of refusing.
        let timeout = max(.milliseconds(250), min(.seconds(2), settings.redis.heartbeatInterval))
        let state = RedisSharedState(url: url, prefix: settings.redis.keyPrefix, timeout: timeout,
                                     reconnectCap: settings.redis.heartbeatInterval, logger: logger)
        server.fleet = FleetMembership(state: state, instanceID: instanceID, leaseTTL: leaseTTL)
        let identity = FleetInstance(
            id: instanceID, region: settings.server.region, publicAddress: settings.fleetAddress(towardRedis: url),
            startedAt: UInt64(Date().timeIntervalSince1970))
        logger.info("joining the fleet through Redis", metadata: [
            "instance": "\(instanceID)", "region": "\(settings.server.region)", "public_addr": "\(identity.publicAddress)",
            "redis": "\(url)",
        ])
        return FleetService(state: state, server: server, identity: identity, heartbeatInterval: settings.redis.heartbeatInterval,
                            flushInterval: settings.redis.usageFlushInterval, leaseTTL: leaseTTL, logger: logger)
    }

    static func randomInstanceID() -> String {
        (0..<8).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// On the first `make run` (default certificate paths, neither file present): writes a
    /// self-signed development certificate and, beside it, a development device key.
    static func prepareDevelopmentFiles(_ settings: RelaySettings, logger: Logger) throws {
        guard StartChecks.willGenerateDevCertificate(settings) else { return }
        let certPath = settings.server.certificatePath
        let keyPath = settings.server.keyPath
        try DevCertificate.generate(certificatePath: certPath, keyPath: keyPath)
        logger.notice("generated a self-signed development certificate", metadata: ["cert": "\(certPath)", "key": "\(keyPath)"])
        let deviceKeyPath = DevDeviceKey.path(besideCertificate: certPath)
        try DevDeviceKey.create(at: deviceKeyPath)
        logger.notice("generated a development device key", metadata: ["key": "\(deviceKeyPath)"])
    }

    /// Tells a newcomer the one command that relays a ping through this development relay.
    static func announceDevelopmentMode(_ settings: RelaySettings, logger: Logger) {
        let deviceKeyPath = DevDeviceKey.path(besideCertificate: settings.server.certificatePath)
        let host = ["0.0.0.0", "::"].contains(settings.server.listenAddress) ? "127.0.0.1" : settings.server.listenAddress
        let relay = host.contains(":") ? "[\(host)]:\(settings.server.listenPort)" : "\(host):\(settings.server.listenPort)"
        let command = "\(CommandLine.arguments.first ?? "zrc-relay") client ping --relay \(relay) --key \(deviceKeyPath)"
        logger.warning("development mode: trusting the development device key (no trusted keys configured)",
                       metadata: ["key": "\(deviceKeyPath)", "try": "\(command)"])
        FileHandle.standardError.write(Data("\nzrc-relay development relay. Relay a ping through it with:\n  \(command)\n\n".utf8))
    }
}

/// The admin API on `admin.unix_socket` (DESIGN §7 v3): a stale socket file is replaced, the
/// new one is made mode 0600 as soon as it is bound, callers are admitted by their uid
/// (SO_PEERCRED: the relay's or root) without a token, and the file is removed at exit.
struct AdminSocketService: Service {
    let path: String
    let admin: RelayAdminAPI
    let logger: Logger

    func run() async throws {
        var info = stat()
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK {
            unlink(path)  // stale, from a relay that did not exit cleanly
        }
        let path = self.path
        let logger = self.logger
        let application = RelayApplication.adminApplication(admin: admin, address: .unixDomainSocket(path: path), logger: logger) { _ in
            if chmod(path, 0o600) != 0 {
                logger.error("cannot make the admin socket mode 0600", metadata: ["path": "\(path)"])
            }
            logger.info("admin API listening", metadata: ["unix_socket": "\(path)"])
        }
        defer { unlink(path) }
        try await application.run()
    }
}

extension RelaySettings {
    /// Where other instances send this one's clients (`alt`, `host:port`): `server.public_addr`,
    /// else the listen address when it is not a wildcard, else the local address this host
    /// reaches Redis from (the fleet's network).
    func fleetAddress(towardRedis url: RedisURL) -> String {
        let port = server.listenPort
        var host = server.publicAddress
        if host == nil, !["0.0.0.0", "::"].contains(server.listenAddress) { host = server.listenAddress }
        if host == nil, let redis = TransportAddress(ipAddress: url.host, port: UInt16(clamping: url.port)),
           let local = TransportAddress.localAddress(toward: redis)?.unmappingIPv4 {
            host = local.hostString
        }
        let chosen = host ?? "127.0.0.1"
        return HostPort(host: chosen, port: port).description
    }

    /// The TCP fallback listeners: on the same address and port as QUIC, and on
    /// `fallback.extra_listen`; none when the fallback is disabled.
    var fallbackConfigurations: [FallbackListener.Configuration] {
        guard fallback.enabled else { return [] }
        let tls = fallback.tls ? (server.certificatePath, server.keyPath) : nil
        let path = fallback.websocket ? fallback.websocketPath : nil
        var listeners = [FallbackListener.Configuration(host: server.listenAddress, port: Int(server.listenPort), tls: tls, websocketPath: path)]
        if let extra = fallback.extraListen {
            listeners.append(FallbackListener.Configuration(host: extra.host, port: Int(extra.port), tls: tls, websocketPath: path))
        }
        return listeners
    }
}

/// A failure to set the relay up that is not a configuration error (a file that cannot be written).
public struct RelayAppError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The process logger: JSON lines (or text) on stderr at the level in `level`.
public func makeLogger(_ settings: RelaySettings, level: LogLevelBox) -> Logger {
    let format = StderrLogHandler.Format(rawValue: settings.logging.format) ?? .json
    return Logger(label: "zrc-relay") { label in StderrLogHandler(label: label, level: level, format: format) }
}
