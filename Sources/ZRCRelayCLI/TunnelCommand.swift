import ArgumentParser
import Foundation
import Logging
import NIOPosix
import RelayApp
import ReverseTunnel
import UnixSignals

/// `zrc-relay tunnel server|client`: the reverse tunnel of DESIGN §9.
struct TunnelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnel",
        abstract: "Reverse tunnel: expose a local TCP service through a public port (yamux over TCP).",
        subcommands: [Server.self, Client.self]
    )

    /// Logging options shared by both sides.
    struct LogOptions: ParsableArguments {
        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
        var logLevel: String = "info"

        @Option(help: "Log format: text or json.")
        var logFormat: String = "text"

        func validate() throws {
            guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level \"\(logLevel)\"") }
            guard StderrLogHandler.Format(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be text or json") }
        }

        func makeLogger(label: String) -> Logger {
            let level = LogLevelBox(Logger.Level(rawValue: logLevel) ?? .info)
            let format = StderrLogHandler.Format(rawValue: logFormat) ?? .text
            return Logger(label: label) { label in StderrLogHandler(label: label, level: level, format: format) }
        }
    }

    struct Server: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Accept tunnel clients on the control port; forward public connections to the most recent one.")

        @Option(help: "Address to listen on (both ports).")
        var listenAddr: String = "0.0.0.0"

        @Option(help: "Port for tunnel clients (yamux over TCP).")
        var controlPort: Int = 4444

        @Option(help: "Public port whose connections are forwarded through the tunnel.")
        var publicPort: Int = 8080

        @Option(help: "Shared secret a client must present before it gets traffic.")
        var token: String?

        @OptionGroup var log: LogOptions

        func validate() throws {
            try validatePort(controlPort, "--control-port")
            try validatePort(publicPort, "--public-port")
            if let token, token.isEmpty || token.contains(where: { $0.isNewline }) {
                throw ValidationError("--token must be non-empty and on one line")
            }
        }

        func run() async throws {
            let logger = log.makeLogger(label: "zrc-relay-tunnel-server")
            var configuration = TunnelServer.Configuration()
            configuration.listenHost = listenAddr
            configuration.controlPort = controlPort
            configuration.publicPort = publicPort
            configuration.token = token
            let server = TunnelServer(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            do {
                _ = try await server.start()
            } catch {
                logger.critical("cannot listen", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await signal in signals {
                        logger.info("signal received; stopping", metadata: ["signal": "\(signal)"])
                        await server.shutdown()
                        return
                    }
                }
                group.addTask { try? await server.waitUntilClosed() }
                await group.next()
                group.cancelAll()
                await server.shutdown()
            }
        }
    }

    struct Client: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Connect to a tunnel server and bridge its public connections to a local service.")

        @Option(help: "Tunnel server control address HOST:PORT (required).")
        var server: String

        @Option(help: "Local service port every public connection is bridged to.")
        var localPort: Int = 3000

        @Option(help: "Local service host.")
        var localHost: String = "127.0.0.1"

        @Option(help: "Shared secret, when the server requires one.")
        var token: String?

        @OptionGroup var log: LogOptions

        func validate() throws {
            _ = try parseHostPort(server)
            try validatePort(localPort, "--local-port", allowZero: false)
            if let token, token.isEmpty || token.contains(where: { $0.isNewline }) {
                throw ValidationError("--token must be non-empty and on one line")
            }
        }

        func run() async throws {
            let logger = log.makeLogger(label: "zrc-relay-tunnel-client")
            let (host, port) = try parseHostPort(server)
            var configuration = TunnelClient.Configuration(serverHost: host, serverPort: port)
            configuration.localHost = localHost
            configuration.localPort = localPort
            configuration.token = token
            let client = TunnelClient(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            do {
                switch try await client.run() {
                case .replaced:
                    logger.notice("replaced by a newer client; exiting")
                case .serverClosed(let reason):
                    logger.info("tunnel server closed the connection; exiting", metadata: ["reason": "\(reason)"])
                }
            } catch let error as TunnelError {
                logger.error("\(error.description)")
                throw ExitCode(1)
            }
        }
    }
}

/// Checks a TCP port flag (0 = any free port, for listeners).
func validatePort(_ port: Int, _ flag: String, allowZero: Bool = true) throws {
    guard (allowZero ? 0 : 1)...65535 ~= port else { throw ValidationError("\(flag) must be a port number (\(allowZero ? 0 : 1)-65535)") }
}

/// Splits `HOST:PORT` (`[v6]:PORT` accepted).
func parseHostPort(_ text: String) throws -> (String, Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), 1...65535 ~= port else {
        throw ValidationError("\"\(text)\" is not HOST:PORT")
    }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty else { throw ValidationError("\"\(text)\" has no host") }
    return (host, port)
}
