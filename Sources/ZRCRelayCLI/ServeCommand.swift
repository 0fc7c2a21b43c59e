import ArgumentParser
import Foundation
import Logging
import Hummingbird
import NIOCore
import QUICTransport
import RelayAdmin
import RelayFallback
import RelayServer
import ServiceLifecycle
import RelayConfig

/// `zrc-relay serve`: runs the relay.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the relay (QUIC on UDP server.listen_port; /health, /ready, /metrics on metrics.listen).",
        discussion: """
            Settings come from the TOML file, then ZRC_RELAY_SECTION_KEY environment variables, then \
            --section.key VALUE flags (later wins). Every key and its default is in config/zrc-relay.toml.
            SIGTERM/SIGINT drain the relay (GOAWAY to clients, up to 30 s) and exit 0.
            """
    )

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let (loader, settings) = try options.load(command: Self.self)
        let relayConfiguration: RelayServerConfiguration
        do {
            relayConfiguration = try StartChecks.run(settings)
        } catch {
            FileHandle.standardError.write(Data("zrc-relay: configuration error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if let failure = ListenPreflight.firstFailure(ListenPreflight.listeners(of: settings)) {
            FileHandle.standardError.write(Data("zrc-relay: \(failure)\n".utf8))
            throw ExitCode(1)
        }
        let level = LogLevelBox(Logger.Level(rawValue: settings.logging.level) ?? .info)
        let logger = makeLogger(settings, level: level)
        if !loader.ignoredEnvironmentNames.isEmpty {
            logger.warning("ignored environment variables that are not settings (orchestrator service links or unknown sections)",
                           metadata: ["names": "\(loader.ignoredEnvironmentNames.joined(separator: ","))"])
        }
        do {
            try await serve(loader, settings, relayConfiguration, logger: logger, level: level)
        } catch {
            logger.critical("relay failed", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }

    private func serve(_ loader: RelaySettingsLoader, _ settings: RelaySettings, _ checkedConfiguration: RelayServerConfiguration,
                       logger: Logger, level: LogLevelBox) async throws {
        var relayConfiguration = checkedConfiguration
        let certPath = settings.server.certificatePath
        let keyPath = settings.server.keyPath
        let fm = FileManager.default
        if certPath == Defaults.byName["server.quic_cert_path"]?.defaultValue,
           keyPath == Defaults.byName["server.quic_key_path"]?.defaultValue,
           !fm.fileExists(atPath: certPath), !fm.fileExists(atPath: keyPath) {
            try DevCertificate.generate(certificatePath: certPath, keyPath: keyPath)
            logger.notice("generated a self-signed development certificate", metadata: ["cert": "\(certPath)", "key": "\(keyPath)"])
            let deviceKeyPath = DevDeviceKey.path(besideCertificate: certPath)
            try DevDeviceKey.create(at: deviceKeyPath)
            logger.notice("generated a development device key", metadata: ["key": "\(deviceKeyPath)"])
        }
        if let developer = StartChecks.developmentSigner(settings) {
            relayConfiguration.tokens.trustedKeys.insert(developer)
            let deviceKeyPath = DevDeviceKey.path(besideCertificate: certPath)
            let host = ["0.0.0.0", "::"].contains(settings.server.listenAddress) ? "127.0.0.1" : settings.server.listenAddress
            let relay = host.contains(":") ? "[\(host)]:\(settings.server.listenPort)" : "\(host):\(settings.server.listenPort)"
            let command = "\(CommandLine.arguments.first ?? "zrc-relay") client ping --relay \(relay) --key \(deviceKeyPath)"
            logger.warning("development mode: trusting the development device key (no trusted keys configured)",
                           metadata: ["key": "\(deviceKeyPath)", "try": "\(command)"])
            FileHandle.standardError.write(Data("\nzrc-relay development relay. Relay a ping through it with:\n  \(command)\n\n".utf8))
        }
        guard let bindAddress = SocketAddress(ipAddress: settings.server.listenAddress, port: settings.server.listenPort) else {
            throw CLIError("server.listen_addr: '\(settings.server.listenAddress)' is not an IP address")
        }
        if relayConfiguration.tokens.trustedKeys.isEmpty {
            logger.warning("no trusted keys configured (auth.trusted_keys / auth.trusted_keys_file): every ALLOCATE will be refused with untrusted_key")
        }
        let server = try RelayServer(quic: settings.quicConfiguration(), bindAddress: bindAddress,
                                     configuration: relayConfiguration, logger: logger)
        let backend = RelayBackend(server: server, metrics: RelayMetrics(region: settings.server.region))
        let http = Application(
            router: HealthRouter.make(backend: backend),
            // An HTTP connection idle this long is closed: scrapers reconnect, idle sockets
            // cannot pile up (DESIGN §6: every listener bounds what a peer can hold).
            server: .http1(configuration: .init(idleTimeout: TimeAmount(HealthRouter.idleTimeout))),
            configuration: .init(address: .hostname(settings.metricsListen.host, port: Int(settings.metricsListen.port)),
                                 serverName: "zrc-relay"),
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: http),
                    .init(service: ConfigReloadService(options: options, loader: loader, settings: settings, configuration: relayConfiguration,
                                                       server: server, level: level, logger: logger)),
                    .init(service: RelayService(server: server, logger: logger, fallback: settings.fallbackConfiguration)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

extension RelaySettings {
    /// The TCP fallback listener on the same address and port as QUIC, or `nil` when disabled.
    var fallbackConfiguration: FallbackListener.Configuration? {
        guard fallback.enabled else { return nil }
        return FallbackListener.Configuration(
            host: server.listenAddress, port: Int(server.listenPort),
            tls: fallback.tls ? (server.certificatePath, server.keyPath) : nil)
    }
}

/// The process logger: JSON lines (or text) on stderr at the level in `level`.
func makeLogger(_ settings: RelaySettings, level: LogLevelBox) -> Logger {
    let format = StderrLogHandler.Format(rawValue: settings.logging.format) ?? .json
    return Logger(label: "zrc-relay") { label in StderrLogHandler(label: label, level: level, format: format) }
}

