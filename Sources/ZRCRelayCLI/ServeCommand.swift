import ArgumentParser
import Foundation
import Logging
import QUICTransport

/// `zrc-relay serve`: runs the relay.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the relay (QUIC on UDP server.listen_port).",
        discussion: """
            Every setting can be given as a flag --section.key VALUE (for example \
            --server.listen-port 4433) or as the environment variable ZRC_RELAY_SECTION_KEY. \
            Keys: \(ServeSettings.defaults.keys.sorted().joined(separator: ", ")).
            """
    )

    @Option(name: .long, help: "TOML configuration file.")
    var config: String?

    @Argument(parsing: .allUnrecognized, help: "Settings as --section.key VALUE.")
    var settings: [String] = []

    func run() throws {
        let parsed: ServeSettings
        do {
            parsed = try ServeSettings(flags: settings, environment: ProcessInfo.processInfo.environment)
        } catch let error as CLIError {
            throw ValidationError(error.description)
        }
        let logger = try makeLogger(parsed)
        do {
            try serve(parsed, logger: logger)
        } catch {
            logger.critical("relay failed to start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }

    private func makeLogger(_ settings: ServeSettings) throws -> Logger {
        guard let level = Logger.Level(rawValue: settings.string("logging.level")) else {
            throw ValidationError("logging.level: '\(settings.string("logging.level"))' is not one of trace, debug, info, notice, warning, error, critical")
        }
        guard let format = StderrLogHandler.Format(rawValue: settings.string("logging.format")) else {
            throw ValidationError("logging.format: '\(settings.string("logging.format"))' is not json or text")
        }
        return Logger(label: "zrc-relay") { label in StderrLogHandler(label: label, level: level, format: format) }
    }

    private func serve(_ settings: ServeSettings, logger: Logger) throws {
        let certPath = settings.string("server.quic_cert_path")
        let keyPath = settings.string("server.quic_key_path")
        let fm = FileManager.default
        if certPath == ServeSettings.defaults["server.quic_cert_path"], keyPath == ServeSettings.defaults["server.quic_key_path"],
           !fm.fileExists(atPath: certPath), !fm.fileExists(atPath: keyPath) {
            try DevCertificate.generate(certificatePath: certPath, keyPath: keyPath)
            logger.notice("generated a self-signed development certificate", metadata: ["cert": "\(certPath)", "key": "\(keyPath)"])
        }
        var quic = QUICConfiguration()
        quic.certificatePath = certPath
        quic.privateKeyPath = keyPath
        quic.maxIdleTimeout = try settings.duration("quic.max_idle_timeout")
        quic.keepAliveInterval = try settings.duration("limits.keepalive_interval")
        let acceptRate = try settings.int("security.accept_rate")
        switch settings.string("quic.retry") {
        case "auto": quic.retryPolicy = .auto(acceptsPerSecond: acceptRate)
        case "always": quic.retryPolicy = .always
        case "never": quic.retryPolicy = .never
        case let other: throw ValidationError("quic.retry: '\(other)' is not auto, always or never")
        }
        let host = settings.string("server.listen_addr")
        let port = try settings.port("server.listen_port")
        guard let bindAddress = SocketAddress(ipAddress: host, port: port) else {
            throw ValidationError("server.listen_addr: '\(host)' is not an IP address")
        }

        let endpoint = try QUICEndpoint(role: .server, configuration: quic, bindAddress: bindAddress, logger: logger)
        let echo = DatagramEcho(logger: logger)
        endpoint.delegate = echo
        try endpoint.start()
        logger.info("relay listening", metadata: ["transport": "quic", "listen": "\(endpoint.localAddress)"])

        SignalWaiter.waitForTermination()
        logger.info("shutting down")
        endpoint.stop()
        logger.info("stopped")
    }
}

/// Until the relay logic lands: every DATAGRAM frame goes back to its sender (transport tests only).
final class DatagramEcho: QUICEndpointDelegate {
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func connectionEstablished(_ connection: QUICConnection) {
        logger.debug("connection established", metadata: ["zrc.conn.id": "\(connection.id)", "zrc.peer.addr": "\(connection.remoteAddress)"])
    }

    func connection(_ connection: QUICConnection, didReceiveDatagram payload: UnsafeRawBufferPointer) {
        connection.sendDatagram(payload)
    }

    func connection(_ connection: QUICConnection, didReceiveControlData bytes: UnsafeRawBufferPointer, fin: Bool) {}

    func connectionClosed(_ connection: QUICConnection, reason: QUICCloseReason) {
        logger.debug("connection closed", metadata: ["zrc.conn.id": "\(connection.id)", "reason": "\(reason)"])
    }
}
