import ArgumentParser
import Foundation
import Logging
import RelayApp
import RelayConfig
import RelayEngine

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
        let application: RelayApplication
        do {
            application = try RelayApplication(
                loader: loader, settings: settings, configuration: relayConfiguration,
                reread: { [options] pinned throws(ConfigError) in try options.read(pinned: pinned) },
                logger: logger, level: level)
        } catch {
            logger.critical("relay failed to start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        do {
            try await application.run()
        } catch {
            logger.critical("relay failed", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }
}
