import ArgumentParser
import Crypto
import Foundation
import Logging
import QUICTransport
import RelayClient
import RelayConfig
import RelayCore
import WebSocketTransport

/// `zrc-relay client connect|echo|ping`: a relay peer for operators and tests.
struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "A relay peer: connect (datagrams on stdin/stdout), echo, ping, bench, diagnose.",
        subcommands: [Connect.self, Echo.self, Ping.self, Bench.self, Diagnose.self]
    )
}

/// Where the relay is and how to reach it.
struct RelayTarget: ParsableArguments {
    @Option(help: "Relay address HOST:PORT, or a WebSocket URL wss://HOST:PORT/PATH (ws:// for a plain listener).")
    var relay: String = "127.0.0.1:4433"

    @Option(help: "TLS server name (SNI); default: the relay host when it is a name.")
    var serverName: String?

    @Option(help: "PEM file of CAs to verify the relay certificate with (default: not verified; payloads are end-to-end encrypted).")
    var ca: String?

    @Option(help: "auto (QUIC, then the TCP fallback, then WebSocket), quic, tcp, or websocket.")
    var transport: TransportChoice = .auto

    @Flag(help: "TCP fallback without TLS (for a relay with fallback.tls = false).")
    var plainTcp = false

    @Option(help: "HTTP proxy for the TCP and WebSocket transports (http://HOST:PORT; default: HTTPS_PROXY unless NO_PROXY names the relay; 'none' for none).")
    var proxy: String?

    /// `--transport`.
    enum TransportChoice: String, ExpressibleByArgument, CaseIterable {
        case auto, quic, tcp, websocket
    }

    func validate() throws {
        if relay.contains("://") {
            guard WebSocketAddress(parsing: relay) != nil else { throw ValidationError("--relay: \(relay) is not a ws:// or wss:// URL") }
            guard transport == .auto || transport == .websocket else {
                throw ValidationError("--relay is a WebSocket URL: --transport must be websocket (or auto)")
            }
        }
        _ = try chosenProxy()
    }

    /// The relay as a WebSocket URL, when it was given as one.
    var websocketURL: WebSocketAddress? { WebSocketAddress(parsing: relay) }

    /// `host:port` of the relay (from the URL when it is one).
    var hostPort: String { websocketURL?.authority ?? relay }

    /// The transports a resilient session tries, in order.
    var sessionTransports: [ClientSessionMachine.Transport] {
        if websocketURL != nil { return [.websocket] }
        switch transport {
        case .auto: return [.quic, .tcp, .websocket]
        case .quic: return [.quic]
        case .tcp: return [.tcp]
        case .websocket: return [.websocket]
        }
    }

    /// How the session reaches the relay besides its address.
    func sessionOptions(serverName: String?, tokenSource: (@Sendable () async -> [UInt8]?)? = nil) throws -> ResilientRelaySession.Options {
        ResilientRelaySession.Options(serverName: serverName, tls: websocketURL?.tls ?? !plainTcp, caPath: ca,
                                      proxy: try chosenProxy(), websocketPath: websocketURL?.path ?? "/zrc-relay/v1",
                                      tokenSource: tokenSource)
    }

    func chosenProxy() throws -> HTTPProxy? {
        let host = websocketURL?.host ?? HostPortParser.split(relay)?.0 ?? relay
        do {
            return try HTTPProxy.choose(explicit: proxy, environment: ProcessInfo.processInfo.environment, targetHost: host)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The relay's WebSocket address: the `--relay` URL, else `wss://host:port/zrc-relay/v1`
    /// on the relay's address (`ws://` with `--plain-tcp`).
    func websocketAddress(for address: TransportAddress) -> WebSocketAddress {
        websocketURL ?? WebSocketAddress(tls: !plainTcp, host: HostPortParser.split(relay)?.0 ?? address.hostString,
                                         port: Int(address.port), path: "/zrc-relay/v1")
    }

    func resolve() throws -> (TransportAddress, String?) {
        guard let (host, port) = HostPortParser.split(hostPort) else {
            throw ValidationError("--relay must be HOST:PORT or wss://HOST:PORT/PATH")
        }
        guard let address = TransportAddress.resolve(host: host, port: UInt16(port)) else { throw ValidationError("cannot resolve \(host)") }
        let name = serverName ?? (TransportAddress(ipAddress: host, port: 0) == nil ? host : nil)
        return (address, name)
    }

    func makeEndpoint(for address: TransportAddress) throws -> RelayClientEndpoint {
        var logger = Logger(label: "zrc-relay-client")
        logger.logLevel = .error
        var quic = QUICConfiguration()
        quic.trustedCAPath = ca
        let any: TransportAddress
        switch address.host {
        case .v4: any = TransportAddress(host: .v4(0, 0, 0, 0), port: 0)
        case .v6: any = TransportAddress(host: .v6([UInt8](repeating: 0, count: 16), scopeID: 0), port: 0)
        }
        let endpoint = try RelayClientEndpoint(configuration: quic, bindAddress: any, logger: logger)
        try endpoint.start()
        return endpoint
    }
}

/// A token and the peer id to bind with it.
struct PeerCredentials: ParsableArguments {
    @Option(help: "Relay token (base64url).")
    var token: String?

    @Option(help: "File holding the relay token (base64url); read again before the allocation expires, and a new token there is sent in REFRESH.")
    var tokenFile: String?

    @Option(help: "This peer's id (32 hex digits; must be peer_a or peer_b of the token).")
    var peer: String

    func validate() throws {
        guard (token == nil) != (tokenFile == nil) else { throw ValidationError("give --token or --token-file (one of them)") }
    }

    func parse() throws -> ([UInt8], PeerID) {
        let text: String
        if let tokenFile {
            guard let contents = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw ValidationError("--token-file \(tokenFile) cannot be read")
            }
            text = contents
        } else {
            text = token ?? ""
        }
        guard let bytes = Base64URL.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ValidationError(tokenFile == nil ? "--token is not base64url" : "--token-file \(tokenFile ?? "") does not hold a base64url token")
        }
        guard let id = PeerID(hex: peer) else { throw ValidationError("--peer must be 32 hex digits") }
        return (bytes, id)
    }

    /// With `--token-file`: the file's token, read again (nil when unreadable or malformed).
    var tokenSource: (@Sendable () async -> [UInt8]?)? {
        guard let tokenFile else { return nil }
        return {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else { return nil }
            return Base64URL.decode(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}

func describe(_ frame: ControlFrame) -> String {
    switch frame {
    case .allocated(let a):
        return "ALLOCATED allocation=\(a.allocationID) expires_at=\(a.expiresAt) bandwidth_bps=\(a.bandwidthBitsPerSecond) quota_bytes=\(a.quotaBytes) relay=\(a.relayAddress):\(a.relayPort) observed=\(a.observedAddress)"
    case .peer(let s): return "PEER \(s == .waiting ? "waiting" : s == .paired ? "paired" : "peer_gone")"
    case .quota(let used, let quota): return "QUOTA used=\(used) quota=\(quota)"
    case .refreshed(let e): return "REFRESHED expires_at=\(e)"
    case .goAway(let g): return "GOAWAY reason=\(g.reason) reconnect_in_ms=\(g.reconnectInMilliseconds) try_for_ms=\(g.tryForMilliseconds) alt=\(g.alternate)"
    case .status(_, let dropped): return "STATUS throttled dropped=\(dropped)"
    case .error(let code, let reason): return "ERROR \(code.name) (\(code.rawValue)): \(reason)"
    default: return "frame 0x\(String(frame.typeByte, radix: 16))"
    }
}

func stderr(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

extension ClientCommand {
    struct Connect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bind to an allocation; each stdin line is sent as a datagram, each datagram received is printed as a line.",
            discussion: "Reconnects on any loss (DESIGN §8) and prints one line per state change on stderr.")

        @OptionGroup var target: RelayTarget
        @OptionGroup var credentials: PeerCredentials
        @OptionGroup var resilience: SessionOptions

        func run() async throws {
            try await resilience.run(target: target, credentials: credentials) { session in
                Task.detached {
                    while let line = readLine(strippingNewline: true) { session.send(Array(line.utf8)) }
                }
            } onDatagram: { _, d in
                FileHandle.standardOutput.write(Data(d + [0x0A]))
            }
        }
    }

    struct Echo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bind to an allocation and send every datagram back.",
            discussion: "Reconnects on any loss (DESIGN §8) and prints one line per state change on stderr.")

        @OptionGroup var target: RelayTarget
        @OptionGroup var credentials: PeerCredentials
        @OptionGroup var resilience: SessionOptions

        func run() async throws {
            try await resilience.run(target: target, credentials: credentials) { _ in nil } onDatagram: { session, d in
                session.send(d)
            }
        }
    }

    struct Ping: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure RTT and loss through a relay.",
            discussion: """
                With --key, mints a token for two fresh peers and runs both (this process echoes). \
                With --token and --peer, pings a remote `client echo` bound as the other peer. \
                Runs the resilient session of `client connect` (--transport auto: QUIC, TCP, WebSocket; at most \
                3 attempts) and prints its state lines on stderr; the allocation is released at the end.
                """)

        @OptionGroup var target: RelayTarget

        @Option(help: "Device key file: mint a token and run both peers here.")
        var key: String?

        @Option(help: "Relay token (base64url), with --peer, to ping a remote echo peer.")
        var token: String?

        @Option(help: "This peer's id (32 hex digits).")
        var peer: String?

        @Option(help: "Number of pings.")
        var count: Int = 100

        @Option(help: "Milliseconds between pings.")
        var interval: Int = 10

        @Option(help: "Payload size in bytes (at least 12).")
        var size: Int = 64

        @Option(help: "Tier of the minted token.")
        var tier: String = "unlimited"

        func validate() throws {
            guard count > 0, count <= 1_000_000 else { throw ValidationError("--count must be 1…1000000") }
            guard interval >= 0 else { throw ValidationError("--interval must be ≥ 0") }
            guard size >= 12, size <= 1400 else { throw ValidationError("--size must be 12…1400") }
            guard key != nil || (token != nil && peer != nil) else {
                throw ValidationError("give --key (self-contained) or --token and --peer (remote echo peer)")
            }
        }

        func run() async throws {
            let (address, name) = try target.resolve()
            let endpoint = try target.makeEndpoint(for: address)
            defer { endpoint.stop() }
            var configuration = ClientSessionMachine.Configuration(relay: target.hostPort, transports: target.sessionTransports)
            configuration.maxAttempts = 3
            let options = try target.sessionOptions(serverName: name)
            var echo: ResilientRelaySession?
            let pinger: ResilientRelaySession
            if let key {
                let signingKey = try TokenCommand.readKey(key)
                let a = PeerID(high: .random(in: 0...UInt64.max), low: 1), b = PeerID(high: .random(in: 0...UInt64.max), low: 2)
                let now = UInt64(Date().timeIntervalSince1970)
                let minted = try RelayTokenV1.mint(
                    signingKey: signingKey, audience: nil,
                    allocationID: AllocationID(high: .random(in: 0...UInt64.max), low: .random(in: 0...UInt64.max)),
                    peerA: a, peerB: b, issuedAt: now, expiresAt: now + 3600, tier: Tier(name: tier) ?? .unlimited)
                echo = ResilientRelaySession(endpoint: endpoint, configuration: configuration, options: options, peerID: b, token: minted.bytes)
                pinger = ResilientRelaySession(endpoint: endpoint, configuration: configuration, options: options, peerID: a, token: minted.bytes)
            } else {
                let credentials = try PeerCredentials.parse(["--token", token ?? "", "--peer", peer ?? ""]).parse()
                pinger = ResilientRelaySession(endpoint: endpoint, configuration: configuration, options: options,
                                               peerID: credentials.1, token: credentials.0)
            }
            // State lines on stderr, as `client connect` prints them; `paired` releases the pings.
            let paired = PairedSignal()
            let printer = Task {
                for await change in pinger.states {
                    stderr("\(Self.stamp(change.at)) state=\(change.state) reason=\(change.reason)")
                    if change.state == .paired { await paired.set(true) }
                    if change.state.isFinal { await paired.set(false) }
                }
            }
            let running = [echo, pinger].compactMap { $0 }.map { session in Task { await session.run() } }
            let echoing = echo.map { echo in Task { for await d in echo.datagrams { echo.send(d) } } }
            defer {
                echoing?.cancel()
                printer.cancel()
            }
            guard await paired.wait(timeout: .seconds(30)) else {
                stderr("not paired")
                pinger.close()
                echo?.close()
                for task in running { _ = await task.value }
                throw ExitCode(1)
            }
            let rtts = RTTCollector()
            let receiver = Task {
                for await d in pinger.datagrams { await rtts.receive(d) }
            }
            for sequence in 0..<count {
                pinger.send(rtts.probe(sequence: UInt32(sequence), size: size))
                if interval > 0 { try await Task.sleep(for: .milliseconds(interval)) }
            }
            try await Task.sleep(for: .seconds(1))
            receiver.cancel()
            let samples = await rtts.sorted()
            let received = samples.count
            func percentile(_ p: Double) -> Double {
                RTTCollector.percentile(p, of: samples).map { Double($0) / 1000 } ?? .nan
            }
            let loss = Double(count - received) / Double(count) * 100
            print(String(format: "sent %d received %d loss %.2f%% rtt_us p50 %.0f p99 %.0f max %.0f",
                         count, received, loss, percentile(0.5), percentile(0.99), percentile(1.0)))
            pinger.release()
            echo?.close()
            for task in running { _ = await task.value }
        }

        static func stamp(_ date: Date) -> String {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return formatter.string(from: date)
        }
    }
}

/// Set once the pinging session is paired (true) or has ended (false).
actor PairedSignal {
    private var value: Bool?
    private var waiters: [CheckedContinuation<Bool, Never>] = []

    func set(_ paired: Bool) {
        guard value == nil else { return }
        value = paired
        for waiter in waiters { waiter.resume(returning: paired) }
        waiters.removeAll()
    }

    /// Whether it paired within `timeout`.
    func wait(timeout: Duration) async -> Bool {
        if let value { return value }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.set(false)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { waiters.append($0) }
    }
}

/// Round-trip samples, deduplicated by sequence number.
/// Probes are `sequence u32 | sent nanoseconds u64 | padding` (big-endian), echoed back by the
/// other peer; `client ping` and `client diagnose` both send and time them this way.
actor RTTCollector {
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    private var samples: [UInt32: UInt64] = [:]

    init() {
        origin = clock.now
    }

    /// Nanoseconds since the collector was made.
    nonisolated func elapsedNanoseconds() -> UInt64 {
        let elapsed = clock.now - origin
        return UInt64(elapsed.components.seconds) * 1_000_000_000 + UInt64(elapsed.components.attoseconds / 1_000_000_000)
    }

    /// A probe of `size` bytes (at least 12) stamped now.
    nonisolated func probe(sequence: UInt32, size: Int) -> [UInt8] {
        var payload = [UInt8](repeating: 0, count: max(12, size))
        let sent = elapsedNanoseconds()
        for i in 0..<4 { payload[i] = UInt8(truncatingIfNeeded: sequence >> (24 - 8 * UInt32(i))) }
        for i in 0..<8 { payload[4 + i] = UInt8(truncatingIfNeeded: sent >> (56 - 8 * UInt64(i))) }
        return payload
    }

    /// Records an echoed probe (shorter datagrams are ignored); the first copy of each counts.
    func receive(_ datagram: [UInt8]) {
        guard datagram.count >= 12 else { return }
        let now = elapsedNanoseconds()
        let sequence = datagram[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let sent = datagram[4..<12].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        if samples[sequence] == nil { samples[sequence] = now &- sent }
    }

    func sorted() -> [UInt64] { samples.values.sorted() }
    func contains(sequence: UInt32) -> Bool { samples[sequence] != nil }

    /// The `p` quantile of sorted samples (nanoseconds), `nil` when there are none.
    static func percentile(_ p: Double, of sorted: [UInt64]) -> UInt64? {
        guard !sorted.isEmpty else { return nil }
        return sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
    }
}

/// `--max-attempts` and the session run shared by `client connect` and `client echo`.
struct SessionOptions: ParsableArguments {
    @Option(help: "Consecutive failed attempts before giving up (0 = never; the count resets after 30 s connected).")
    var maxAttempts: Int = 10

    @Option(help: "After falling back from QUIC, how often QUIC is tried again in the background.")
    var quicProbeInterval: String = "60s"

    func validate() throws {
        guard maxAttempts >= 0 else { throw ValidationError("--max-attempts must be ≥ 0") }
        guard let interval = ConfigUnits.duration(quicProbeInterval), interval >= .milliseconds(100) else {
            throw ValidationError("--quic-probe-interval: '\(quicProbeInterval)' is not a duration of at least 100ms")
        }
    }

    /// Runs a resilient session until it fails (exit 1 with the reason) or closes (exit 0),
    /// printing one line per state change: `<time> state=<state> reason=<reason>`.
    func run(target: RelayTarget, credentials: PeerCredentials,
             start: @escaping @Sendable (ResilientRelaySession) -> Task<Void, Never>?,
             onDatagram: @escaping @Sendable (ResilientRelaySession, [UInt8]) -> Void) async throws {
        let (address, name) = try target.resolve()
        let (token, peer) = try credentials.parse()
        let endpoint = try target.makeEndpoint(for: address)
        defer { endpoint.stop() }
        var configuration = ClientSessionMachine.Configuration(relay: target.hostPort, transports: target.sessionTransports)
        configuration.maxAttempts = maxAttempts
        configuration.quicProbeInterval = ConfigUnits.duration(quicProbeInterval) ?? .seconds(60)
        let session = ResilientRelaySession(
            endpoint: endpoint, configuration: configuration,
            options: try target.sessionOptions(serverName: name, tokenSource: credentials.tokenSource), peerID: peer, token: token)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let printer = Task {
            for await change in session.states {
                stderr("\(formatter.string(from: change.at)) state=\(change.state) reason=\(change.reason)")
            }
        }
        let frames = Task { for await frame in session.frames { stderr(describe(frame)) } }
        let datagrams = Task { for await d in session.datagrams { onDatagram(session, d) } }
        let input = start(session)
        defer { input?.cancel() }
        let final = await session.run()
        _ = await (printer.value, frames.value)
        datagrams.cancel()
        if case .failed(let reason) = final {
            stderr("failed: \(reason)")
            throw ExitCode(1)
        }
    }
}
