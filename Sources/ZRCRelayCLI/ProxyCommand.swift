import ArgumentParser
import EgressProxy
import EgressProxyNIO
import Foundation
import Logging
import NIOPosix
import UnixSignals

/// `zrc-relay proxy server|agent`: the egress proxy over mutual TLS of DESIGN §12.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Egress proxy over mutual TLS: a local HTTP proxy (agent) and the server that dials out.",
        subcommands: [Server.self, Agent.self]
    )

    struct Server: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Accept agents over mutual TLS 1.3 and make their outbound connections.")

        @Option(help: "Address to listen on, HOST:PORT.")
        var listen: String = "0.0.0.0:8443"

        @Option(help: "The CA certificate that signs agents' certificates.")
        var ca: String

        @Option(help: "The server's certificate (PEM).")
        var cert: String

        @Option(help: "The server's private key (PEM).")
        var key: String

        @Option(help: "Allow file: host globs, IP literals, CIDRs, each with optional :port[,port] (default: any host on 80 and 443).")
        var allowFile: String?

        @Flag(help: "Also allow loopback, private, link-local and other special addresses.")
        var allowPrivate = false

        @Option(help: "Streams one agent may have open at once (beyond: busy).")
        var maxStreams: Int = ProxyDefaults.maximumStreams

        @Option(help: "Serve /metrics and /health on HOST:PORT.")
        var metricsListen: String?

        /// Tests only: how long an open circuit refuses (DESIGN §12 says 60 s).
        @Option(help: .hidden)
        var circuitOpenSeconds: Double = 60

        @OptionGroup var log: TunnelCommand.LogOptions

        func validate() throws {
            _ = try parseHostPort(listen, allowZeroPort: true)
            if let metricsListen { _ = try parseHostPort(metricsListen, allowZeroPort: true) }
            guard (1...65_536).contains(maxStreams) else { throw ValidationError("--max-streams must be 1-65536") }
            guard circuitOpenSeconds > 0, circuitOpenSeconds <= 86_400 else { throw ValidationError("--circuit-open-seconds must be in (0, 86400]") }
        }

        func run() async throws {
            let logger = log.makeLogger(label: "zrc-relay-proxy-server")
            let (host, port) = try parseHostPort(listen, allowZeroPort: true)
            var configuration = EgressProxyServer.Configuration(caPath: ca, certificatePath: cert, keyPath: key)
            configuration.listenHost = host
            configuration.listenPort = port
            configuration.allowPrivate = allowPrivate
            configuration.maximumStreams = maxStreams
            configuration.circuitOpenDuration = .milliseconds(Int64(circuitOpenSeconds * 1000))
            if let allowFile {
                let text: String
                do {
                    text = try String(contentsOfFile: allowFile, encoding: .utf8)
                } catch {
                    throw configurationError("--allow-file: \(allowFile): cannot read the file")
                }
                do {
                    configuration.allowList = try ProxyAllowList(parsing: text)
                } catch {
                    throw configurationError("--allow-file: \(allowFile): \(error)")
                }
            }
            let server = EgressProxyServer(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            do {
                _ = try await server.start()
            } catch let error as ProxyTLS.FileError {
                throw configurationError("\(error)")
            } catch {
                logger.critical("cannot listen", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
            if let metricsListen {
                let (metricsHost, metricsPort) = try parseHostPort(metricsListen, allowZeroPort: true)
                do {
                    let channel = try await server.startMetrics(host: metricsHost, port: metricsPort)
                    logger.info("metrics listening", metadata: ["listen": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
                } catch {
                    logger.critical("cannot listen for metrics", metadata: ["error": "\(error)"])
                    throw ExitCode(1)
                }
            }
            await serveUntilSignal(logger: logger, wait: { try? await server.waitUntilClosed() }, stop: { await server.shutdown() })
        }
    }

    struct Agent: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A local HTTP/1.1 proxy whose connections go out through a proxy server over mutual TLS.")

        @Option(help: "The proxy server, HOST:PORT.")
        var server: String

        @Option(help: "Address of the local HTTP proxy, HOST:PORT.")
        var listen: String = "127.0.0.1:8080"

        @Option(help: "The CA certificate that signs the server's certificate.")
        var ca: String

        @Option(help: "The agent's client certificate (PEM).")
        var cert: String

        @Option(help: "The agent's private key (PEM).")
        var key: String

        @Option(help: "Command run after 3 consecutive failed connects; prints a new HOST:PORT of the server.")
        var discoverCmd: String?

        @Option(help: "Command run whenever the agent exits.")
        var onExitCmd: String?

        @OptionGroup var log: TunnelCommand.LogOptions

        func validate() throws {
            _ = try parseHostPort(server)
            _ = try parseHostPort(listen, allowZeroPort: true)
        }

        func run() async throws {
            let logger = log.makeLogger(label: "zrc-relay-proxy-agent")
            let code = await runAgent(logger: logger)
            if let onExitCmd {
                let outcome = await ShellCommand.run(onExitCmd)
                logger.info("--on-exit-cmd ran", metadata: ["status": "\(outcome.status.map { "\($0)" } ?? "killed")"])
            }
            if code != 0 { throw ExitCode(code) }
        }

        /// Runs until a signal (0), an unrecoverable TLS error (1) or a start-up failure (1, 2).
        private func runAgent(logger: Logger) async -> Int32 {
            let (host, port): (String, Int)
            let (listenHost, listenPort): (String, Int)
            do {
                (host, port) = try parseHostPort(server)
                (listenHost, listenPort) = try parseHostPort(listen, allowZeroPort: true)
            } catch {
                return 2
            }
            var configuration = EgressProxyAgent.Configuration(serverHost: host, serverPort: port, caPath: ca, certificatePath: cert, keyPath: key)
            configuration.listenHost = listenHost
            configuration.listenPort = listenPort
            configuration.discoverCommand = discoverCmd
            let agent: EgressProxyAgent
            do {
                agent = try EgressProxyAgent(configuration: configuration, logger: logger)
            } catch {
                FileHandle.standardError.write(Data("zrc-relay proxy agent: \(error)\n".utf8))
                return 2
            }
            do {
                _ = try await agent.listen()
            } catch {
                logger.critical("cannot listen", metadata: ["error": "\(error)"])
                await agent.shutdown(grace: .zero)
                return 1
            }
            enum Ending: Sendable {
                case signal
                case unrecoverable(String)
                case stopped
            }
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
            let ending = await withTaskGroup(of: Ending.self) { group -> Ending in
                group.addTask {
                    for await signal in signals {
                        logger.info("signal received; finishing open connections", metadata: ["signal": "\(signal)"])
                        return .signal
                    }
                    return .signal
                }
                group.addTask {
                    do {
                        try await agent.run()
                        return .stopped
                    } catch {
                        return .unrecoverable("\(error)")
                    }
                }
                let first = await group.next() ?? .stopped
                // The tunnel task waits on the session; ending it (graceful or not) is what
                // lets that task, and so this group, finish.
                switch first {
                case .signal, .stopped: await agent.shutdown()
                case .unrecoverable: await agent.shutdown(grace: .zero)
                }
                group.cancelAll()
                return first
            }
            switch ending {
            case .signal, .stopped:
                logger.info("agent stopped")
                return 0
            case .unrecoverable(let reason):
                logger.error("unrecoverable; exiting", metadata: ["reason": "\(reason)"])
                FileHandle.standardError.write(Data("zrc-relay proxy agent: \(reason)\n".utf8))
                return 1
            }
        }
    }
}

/// A configuration problem: one line naming the key, exit 2 (DESIGN §2).
func configurationError(_ message: String) -> any Error {
    FileHandle.standardError.write(Data("zrc-relay: \(message)\n".utf8))
    return ExitCode(2)
}

/// Splits `HOST:PORT` (`[v6]:PORT`), allowing port 0 for listeners.
func parseHostPort(_ text: String, allowZeroPort: Bool) throws -> (String, Int) {
    if allowZeroPort, text.hasSuffix(":0") {
        let host = String(text.dropLast(2))
        guard !host.isEmpty else { throw ValidationError("\"\(text)\" has no host") }
        return (host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host, 0)
    }
    return try parseHostPort(text)
}
