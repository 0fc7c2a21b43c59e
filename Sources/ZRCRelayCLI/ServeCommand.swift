import ArgumentParser
import Foundation
import Logging
import QUICTransport
import RelayConfig

/// `zrc-relay serve`: runs the relay.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the relay (QUIC on UDP server.listen_port).",
        discussion: """
            Settings come from the TOML file, then ZRC_RELAY_SECTION_KEY environment variables, then \
            --section.key VALUE flags (later wins). Every key and its default is in config/zrc-relay.toml.
            """
    )

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let (_, settings) = try options.load()
        let logger = makeLogger(settings)
        do {
            try serve(settings, logger: logger)
        } catch {
            logger.critical("relay failed to start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }

    private func serve(_ settings: RelaySettings, logger: Logger) throws {
        let certPath = settings.server.certificatePath
        let keyPath = settings.server.keyPath
        let fm = FileManager.default
        if certPath == Defaults.byName["server.quic_cert_path"]?.defaultValue,
           keyPath == Defaults.byName["server.quic_key_path"]?.defaultValue,
           !fm.fileExists(atPath: certPath), !fm.fileExists(atPath: keyPath) {
            try DevCertificate.generate(certificatePath: certPath, keyPath: keyPath)
            logger.notice("generated a self-signed development certificate", metadata: ["cert": "\(certPath)", "key": "\(keyPath)"])
        }
        var quic = QUICConfiguration()
        quic.certificatePath = certPath
        quic.privateKeyPath = keyPath
        quic.maxIdleTimeout = settings.quic.maxIdleTimeout
        quic.keepAliveInterval = settings.limits.keepaliveInterval
        switch settings.quic.retry {
        case .auto:
            let rate = settings.security.acceptRate
            let perSecond = Int((Double(rate.count) / max(0.001, Double(rate.window.components.seconds))).rounded(.up))
            quic.retryPolicy = .auto(acceptsPerSecond: perSecond)
        case .always: quic.retryPolicy = .always
        case .never: quic.retryPolicy = .never
        }
        guard let bindAddress = SocketAddress(ipAddress: settings.server.listenAddress, port: settings.server.listenPort) else {
            throw CLIError("server.listen_addr: '\(settings.server.listenAddress)' is not an IP address")
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

/// The process logger: JSON lines (or text) on stderr at the configured level.
func makeLogger(_ settings: RelaySettings) -> Logger {
    let level = Logger.Level(rawValue: settings.logging.level) ?? .info
    let format = StderrLogHandler.Format(rawValue: settings.logging.format) ?? .json
    return Logger(label: "zrc-relay") { label in StderrLogHandler(label: label, level: level, format: format) }
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
