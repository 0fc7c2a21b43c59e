import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RelayApp
import ReverseTunnel
import UnixSignals
import WebSocketTransport

/// `zrc-relay tunnel server|client`: the reverse tunnel of DESIGN §9.
struct TunnelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnel",
        abstract: "Reverse tunnel: expose a local TCP service through a public port, or local HTTP services as <name>.<domain> (yamux over TCP or TLS).",
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
            abstract: "Accept tunnel clients on the control port; forward public connections to them.",
            discussion: """
                Plain mode (--public-port): every public TCP connection goes to the most recent client (DESIGN §9).
                Named mode (--http-port/--https-port with --domain): HTTP requests are routed by Host \
                <name>.<domain> to the client with that name (DESIGN §11; docs/TUNNELS.md).
                """)

        @Option(help: "Address to listen on (all ports).")
        var listenAddr: String = "0.0.0.0"

        @Option(help: "Port for tunnel clients (yamux over TCP, or TLS with --tls-cert).")
        var controlPort: Int = 4444

        @Option(help: "Plain mode: public port whose connections are forwarded through the tunnel (default 8080).")
        var publicPort: Int?

        @Option(help: "Named mode: public HTTP port, routed by Host <name>.<domain>.")
        var httpPort: Int?

        @Option(help: "Named mode: public HTTPS port, routed by SNI (needs --public-cert/--public-key).")
        var httpsPort: Int?

        @Option(help: "Named mode: the tunnels' domain (tunnels.example.com).")
        var domain: String?

        @Option(help: "Named mode: wildcard certificate (PEM) for *.<domain> on the HTTPS port.")
        var publicCert: String?

        @Option(help: "Named mode: private key (PEM) of --public-cert.")
        var publicKey: String?

        @Option(help: "Shared secret a client must present (named mode: valid for any name).")
        var token: String?

        @Option(help: "Named mode: file of \"name token\" lines (# comments); each token is valid only for its name.")
        var tokensFile: String?

        @Option(help: "TLS 1.3 certificate (PEM) for the control port.")
        var tlsCert: String?

        @Option(help: "Private key (PEM) of --tls-cert.")
        var tlsKey: String?

        @Option(help: "Named mode: serve Prometheus metrics on HOST:PORT at /metrics.")
        var metricsListen: String?

        @Flag(help: "The control port also takes clients over WebSocket (ws://, or wss:// with --tls-cert) at --websocket-path.")
        var websocket = false

        @Option(help: "The WebSocket upgrade path of the control port.")
        var websocketPath: String = "/zrc-relay/v1"

        @Option(help: .hidden) var testHeadTimeoutMs: Int?
        @Option(help: .hidden) var testResponseTimeoutMs: Int?
        @Option(help: .hidden) var testHoldMs: Int?

        @OptionGroup var log: LogOptions

        var isNamed: Bool { httpPort != nil || httpsPort != nil || domain != nil }

        func validate() throws {
            try validatePort(controlPort, "--control-port")
            if let publicPort { try validatePort(publicPort, "--public-port") }
            if let httpPort { try validatePort(httpPort, "--http-port") }
            if let httpsPort { try validatePort(httpsPort, "--https-port") }
            if let token, token.isEmpty || token.contains(where: { $0.isNewline || $0 == " " }) || token == "-" {
                throw ValidationError("--token must be non-empty, on one line, without spaces, and not \"-\"")
            }
            guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
            guard websocketPath.hasPrefix("/"), !websocketPath.contains("?"), websocketPath.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ValidationError("--websocket-path must be \"/\" then visible ASCII, without a query")
            }
            if isNamed {
                guard publicPort == nil else { throw ValidationError("--public-port is plain mode; named mode uses --http-port/--https-port") }
                guard let domain, TunnelHostRouter.isValidDomain(domain) else {
                    throw ValidationError("named mode needs --domain, a DNS name such as tunnels.example.com")
                }
                guard httpPort != nil || httpsPort != nil else { throw ValidationError("named mode needs --http-port or --https-port") }
                guard token == nil || tokensFile == nil else { throw ValidationError("use --token or --tokens-file, not both") }
                guard (publicCert == nil) == (publicKey == nil) else { throw ValidationError("--public-cert and --public-key go together") }
                if httpsPort != nil, publicCert == nil { throw ValidationError("--https-port needs --public-cert and --public-key") }
                if let metricsListen { _ = try parseHostPort(metricsListen) }
            } else {
                for (flag, value) in [("--tokens-file", tokensFile), ("--public-cert", publicCert), ("--public-key", publicKey),
                                      ("--metrics-listen", metricsListen)] where value != nil {
                    throw ValidationError("\(flag) is for named mode (--http-port/--https-port with --domain)")
                }
            }
        }

        func run() async throws {
            let logger = log.makeLogger(label: "zrc-relay-tunnel-server")
            let controlTLS: NIOSSLContext?
            do {
                controlTLS = try tlsCert.map { try TunnelTLS.serverContext(certificatePath: $0, keyPath: tlsKey ?? "", minimumTLS13: true) }
            } catch {
                logger.critical("cannot load --tls-cert/--tls-key", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
            if isNamed {
                try await runNamed(logger: logger, controlTLS: controlTLS)
                return
            }
            var configuration = TunnelServer.Configuration()
            configuration.listenHost = listenAddr
            configuration.controlPort = controlPort
            configuration.publicPort = publicPort ?? 8080
            configuration.token = token
            configuration.controlTLS = controlTLS
            configuration.websocketPath = websocket ? websocketPath : nil
            let server = TunnelServer(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            do {
                _ = try await server.start()
            } catch {
                logger.critical("cannot listen", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
            await serveUntilSignal(logger: logger, wait: { try? await server.waitUntilClosed() }, stop: { await server.shutdown() })
        }

        private func runNamed(logger: Logger, controlTLS: NIOSSLContext?) async throws {
            var configuration = NamedTunnelServer.Configuration()
            configuration.listenHost = listenAddr
            configuration.controlPort = controlPort
            configuration.httpPort = httpPort
            configuration.httpsPort = httpsPort
            configuration.domain = domain ?? ""
            configuration.controlTLS = controlTLS
            configuration.websocketPath = websocket ? websocketPath : nil
            if let testHeadTimeoutMs { configuration.headTimeout = .milliseconds(Int64(max(1, testHeadTimeoutMs))) }
            if let testResponseTimeoutMs { configuration.responseTimeout = .milliseconds(Int64(max(1, testResponseTimeoutMs))) }
            if let testHoldMs { configuration.holdDuration = .milliseconds(max(1, testHoldMs)) }
            do {
                if let publicCert, let publicKey {
                    configuration.publicTLS = try TunnelTLS.serverContext(certificatePath: publicCert, keyPath: publicKey, minimumTLS13: false)
                }
                if let tokensFile {
                    let bytes = try Data(contentsOf: URL(fileURLWithPath: tokensFile))
                    configuration.tokens = .perName(try TunnelTokensFileParser.parse(Array(bytes)))
                } else if let token {
                    configuration.tokens = .shared(Array(token.utf8))
                }
            } catch let error as TunnelTokensFileParser.ParseError {
                logger.critical("cannot use --tokens-file", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            } catch {
                logger.critical("cannot load a certificate, key or tokens file", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
            let metrics = TunnelMetrics()
            configuration.metrics = metrics
            let group = MultiThreadedEventLoopGroup.singleton
            let server = NamedTunnelServer(configuration: configuration, group: group, logger: logger)
            var metricsChannel: (any Channel)?
            do {
                _ = try await server.start()
                if let metricsListen {
                    let (host, port) = try parseHostPort(metricsListen)
                    metricsChannel = try await TunnelMetricsListener.bind(host: host, port: port, metrics: metrics, group: group)
                    logger.info("metrics listening", metadata: ["addr": "\(metricsListen)"])
                }
            } catch {
                logger.critical("cannot listen", metadata: ["error": "\(error)"])
                await server.shutdown()
                throw ExitCode(1)
            }
            let metricsListener = metricsChannel
            await serveUntilSignal(logger: logger, wait: { try? await server.waitUntilClosed() }, stop: {
                await server.shutdown()
                try? await metricsListener?.close()
            })
        }
    }

    struct Client: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Connect to a tunnel server and bridge its public connections to a local service.")

        @Option(help: "Tunnel server control address HOST:PORT, or wss://HOST:PORT/PATH (ws:// without TLS) for a server with --websocket (required).")
        var server: String

        @Option(help: "HTTP proxy for a WebSocket control connection (http://HOST:PORT; default: HTTPS_PROXY unless NO_PROXY names the server; 'none' for none).")
        var proxy: String?

        @Option(help: "Local service port every public connection is bridged to.")
        var localPort: Int = 3000

        @Option(help: "Local service host.")
        var localHost: String = "127.0.0.1"

        @Option(help: "Shared secret, when the server requires one.")
        var token: String?

        @Option(help: "Named mode: the tunnel name (a DNS label); without it a named server picks a random one.")
        var name: String?

        @Flag(inversion: .prefixedNo, help: "Reconnect when the session ends (default: on in named mode, off in plain mode).")
        var reconnect: Bool?

        @Option(help: "Use TLS 1.3 on the control connection, trusting this CA (PEM).")
        var tlsCa: String?

        @Flag(help: "Use TLS 1.3 on the control connection without verifying the server (tests only).")
        var insecure = false

        @OptionGroup var log: LogOptions

        /// The server as a WebSocket URL, when it was given as one.
        var websocketURL: WebSocketAddress? { WebSocketAddress(parsing: server) }

        func validate() throws {
            if server.contains("://") {
                guard websocketURL != nil else { throw ValidationError("--server: \(server) is not HOST:PORT or a ws:// or wss:// URL") }
            } else {
                _ = try parseHostPort(server)
                guard proxy == nil else { throw ValidationError("--proxy is for a wss:// server") }
            }
            try validatePort(localPort, "--local-port", allowZero: false)
            if let token, token.isEmpty || token.contains(where: { $0.isNewline || $0 == " " }) || token == "-" {
                throw ValidationError("--token must be non-empty, on one line, without spaces, and not \"-\"")
            }
            if let name, case .failure(let problem) = TunnelName.validate(name) {
                throw ValidationError("--name \"\(name)\": \(problem)")
            }
            guard tlsCa == nil || !insecure else { throw ValidationError("--tls-ca and --insecure exclude each other") }
        }

        func run() async throws {
            let logger = log.makeLogger(label: "zrc-relay-tunnel-client")
            let (host, port) = try websocketURL.map { ($0.host, $0.port) } ?? parseHostPort(server)
            var configuration = TunnelClient.Configuration(serverHost: host, serverPort: port)
            if let url = websocketURL {
                configuration.websocket = url
                configuration.websocketCAPath = tlsCa
                configuration.verifyWebSocketServer = !insecure
                do {
                    configuration.proxy = try HTTPProxy.choose(explicit: proxy, environment: ProcessInfo.processInfo.environment, targetHost: url.host)
                } catch {
                    throw ValidationError("\(error)")
                }
                if !url.tls, token != nil {
                    logger.warning("the token travels in clear text: use wss:// (and a server with --tls-cert) on untrusted networks")
                }
            }
            configuration.localHost = localHost
            configuration.localPort = localPort
            configuration.token = token
            configuration.name = name
            configuration.reconnect = reconnect
            if websocketURL != nil {
                // TLS (wss) is the dialer's; --tls-ca / --insecure choose its verification above.
            } else if tlsCa != nil || insecure {
                do {
                    configuration.tls = try TunnelTLS.clientContext(caPath: tlsCa, insecure: insecure)
                } catch {
                    logger.error("cannot load --tls-ca", metadata: ["error": "\(error)"])
                    throw ExitCode(1)
                }
            } else if token != nil {
                logger.warning("the token travels in clear text: use --tls-ca (and a server with --tls-cert) on untrusted networks")
            }
            let client = TunnelClient(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            do {
                let ending = try await client.runReconnecting { established in
                    if let url = established.publicURL {
                        // Unbuffered, so that a script reading the pipe sees it at once.
                        FileHandle.standardOutput.write(Data("tunnel ready: \(url)\n".utf8))
                    }
                }
                switch ending {
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

/// Runs a server until SIGTERM/SIGINT or until it closes by itself, then stops it (once the
/// signal's stop or the final one; `stop` must tolerate a second call).
func serveUntilSignal(logger: Logger, wait: @escaping @Sendable () async -> Void,
                      stop: @escaping @Sendable () async -> Void) async {
    let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
    await withTaskGroup(of: Void.self) { group in
        group.addTask {
            for await signal in signals {
                logger.info("signal received; stopping", metadata: ["signal": "\(signal)"])
                await stop()
                return
            }
        }
        group.addTask { await wait() }
        await group.next()
        group.cancelAll()
        await stop()
    }
}
