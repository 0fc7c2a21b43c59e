import ArgumentParser
import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import QUICTransport
import RelayClient
import RelayCore
import WebSocketTransport

extension ClientCommand {
    /// `zrc-relay client diagnose`: each component of the path to a relay, separately (DESIGN §8).
    struct Diagnose: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Test each part of the path to a relay and say what to fix.",
            discussion: """
                Steps, in order: DNS, UDP reachability (a Version Negotiation probe), QUIC handshake, the \
                certificate, the token (offline), ALLOCATE, a datagram round trip with a self-paired token \
                (200 probes: RTT p50/p99, loss, the largest datagram that passes), the TCP/TLS fallback, \
                WebSocket; then a verdict with a quality grade. Every failure names its category, a code and a \
                hint (docs/TROUBLESHOOTING.md lists them all). Exit 0 when relaying works over at least one \
                transport, 1 otherwise. With --token, the round trip binds both peers of the token.
                """)

        @OptionGroup var target: RelayTarget

        @Option(help: "Device key file: mint a token for two fresh peers (the relay must trust its public key).")
        var key: String?

        @Option(help: "Relay token (base64url), with --peer.")
        var token: String?

        @Option(help: "This peer's id (32 hex digits), with --token.")
        var peer: String?

        @Option(help: "Public key (base64url) the token's signature is checked against, offline.")
        var trusted: String?

        @Option(help: "Datagram probes for the round trip.")
        var probes: Int = 200

        @Flag(help: "Print one JSON object instead of lines.")
        var json = false

        func validate() throws {
            guard (10...10_000).contains(probes) else { throw ValidationError("--probes must be 10…10000") }
            guard key == nil || token == nil else { throw ValidationError("give --key or --token, not both") }
            guard (token == nil) == (peer == nil) else { throw ValidationError("--token needs --peer (and --peer needs --token)") }
        }

        func run() async throws {
            var runner = DiagnoseRunner(command: self)
            let diagnosis = await runner.run()
            print(json ? diagnosis.json : diagnosis.text)
            if !diagnosis.canRelay { throw ExitCode(1) }
        }
    }
}

/// Runs the steps of `client diagnose` and records them in a `ClientDiagnosis`.
struct DiagnoseRunner {
    let command: ClientCommand.Diagnose
    var diagnosis: ClientDiagnosis
    private let stepTimeout: Duration = .seconds(3)

    init(command: ClientCommand.Diagnose) {
        self.command = command
        self.diagnosis = ClientDiagnosis(relay: command.target.hostPort)
    }

    private var target: RelayTarget { command.target }

    mutating func run() async -> ClientDiagnosis {
        guard let (host, port) = HostPortParser.split(target.hostPort) else {
            diagnosis.record(.fail(.dns, target.relay, .init(.configuration, "bad_address", "--relay must be HOST:PORT or wss://HOST:PORT/PATH")))
            return diagnosis
        }
        // DNS
        let started = ContinuousClock.now
        guard let address = TransportAddress.resolve(host: host, port: UInt16(port)) else {
            diagnosis.record(.fail(.dns, "\(host) does not resolve", .init(
                .network, "dns_failed", "the name \(host) does not resolve here: check its spelling, the DNS record, and this host's resolver")))
            return diagnosis
        }
        diagnosis.record(.ok(.dns, "\(host) → \(address.hostString) in \(Self.ms(ContinuousClock.now - started))"))
        let serverName = target.serverName ?? (TransportAddress(ipAddress: host, port: 0) == nil ? host : nil)

        // Token (offline) first: the later steps need one.
        let credentials = tokenStep()
        let viaURL = target.websocketURL != nil

        // UDP and QUIC
        let endpoint: RelayClientEndpoint?
        do {
            endpoint = try target.makeEndpoint(for: address)
        } catch {
            endpoint = nil
        }
        defer { endpoint?.stop() }
        if viaURL {
            diagnosis.record(.skip(.udp, "the relay is given as a WebSocket URL"))
            diagnosis.record(.skip(.quic, "the relay is given as a WebSocket URL"))
        } else {
            let probeStart = ContinuousClock.now
            if await QUICReachability.answers(address, timeout: .seconds(2)) {
                diagnosis.record(.ok(.udp, "Version Negotiation answer in \(Self.ms(ContinuousClock.now - probeStart))"))
            } else {
                diagnosis.record(.fail(.udp, "no answer within 2 s", .init(.network, "udp_blocked", "")))  // hint after the TCP step
            }
            if let endpoint {
                await quicSteps(endpoint: endpoint, address: address, serverName: serverName, credentials: credentials)
            }
        }
        await certificateStep(host: host, port: port, serverName: serverName)
        if viaURL {
            diagnosis.record(.skip(.tcp, "the relay is given as a WebSocket URL"))
        } else if let endpoint {
            await streamStep(.tcp, endpoint: endpoint, address: address, host: host, serverName: serverName, credentials: credentials)
        }
        if let endpoint {
            await streamStep(.websocket, endpoint: endpoint, address: address, host: host, serverName: serverName, credentials: credentials)
        }
        fillUDPHint(port: port)
        return diagnosis
    }

    // MARK: Steps

    typealias Credentials = (token: [UInt8], peer: PeerID, other: PeerID)

    /// Parses or mints the token; checks layout, expiry and (with --trusted) the signature offline.
    private mutating func tokenStep() -> Credentials? {
        let now = UInt64(Date().timeIntervalSince1970)
        if let keyPath = command.key {
            do {
                let signingKey = try TokenCommand.readKey(keyPath)
                let a = PeerID(high: .random(in: 0...UInt64.max), low: 1), b = PeerID(high: .random(in: 0...UInt64.max), low: 2)
                let minted = try RelayTokenV1.mint(
                    signingKey: signingKey, audience: nil,
                    allocationID: AllocationID(high: .random(in: 0...UInt64.max), low: .random(in: 0...UInt64.max)),
                    peerA: a, peerB: b, issuedAt: now - 5, expiresAt: now + 600, tier: .unlimited)
                diagnosis.record(.ok(.token, "minted with \(keyPath) (signer \(Base64URL.encode(signingKey.publicKey.rawRepresentation).prefix(12))…)"))
                return (minted.bytes, a, b)
            } catch {
                diagnosis.record(.fail(.token, "\(error)", .init(.configuration, "key_unreadable", "--key must be a device key file from `zrc-relay token keygen`")))
                return nil
            }
        }
        guard let text = command.token, let peerText = command.peer else {
            diagnosis.record(.skip(.token, "no --key or --token: ALLOCATE and the round trip are skipped"))
            return nil
        }
        let parsed: RelayTokenV1
        do {
            parsed = try RelayTokenV1(text: text.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            diagnosis.record(.fail(.token, "\(error)", .init(.authentication, "token_malformed", "the token is not a RelayTokenV1 in base64url: copy it whole, or mint a new one")))
            return nil
        }
        guard let peer = PeerID(hex: peerText), parsed.allows(peer) else {
            diagnosis.record(.fail(.token, "peer \(peerText) is not in the token", .init(
                .configuration, "unknown_peer", "--peer must be the token's peer_a or peer_b (see `zrc-relay token inspect`)")))
            return nil
        }
        if parsed.expiresAt <= now {
            diagnosis.record(.fail(.token, "expired \(now - parsed.expiresAt) s ago", .init(
                .authentication, "token_expired", "mint a fresh token (and check this machine's clock)")))
            return nil
        }
        if parsed.issuedAt > now + 60 {
            diagnosis.record(.fail(.token, "issued \(parsed.issuedAt - now) s in the future", .init(
                .authentication, "token_not_yet_valid", "the clocks of the minting host and this host disagree")))
            return nil
        }
        if !parsed.hasValidSignature {
            diagnosis.record(.fail(.token, "the signature does not verify", .init(
                .authentication, "token_bad_signature", "the token was altered or truncated: mint a new one")))
            return nil
        }
        if let trusted = command.trusted {
            guard Base64URL.decode(trusted) == parsed.signer.bytes else {
                diagnosis.record(.fail(.token, "signed by another key", .init(
                    .authentication, "untrusted_key", "the token's signer is not --trusted: mint it with the key the relay trusts")))
                return nil
            }
        }
        let other = parsed.peerA == peer ? parsed.peerB : parsed.peerA
        let audience = parsed.audience.allSatisfy { $0 == 0 } ? "any relay" : "one audience (must match the relay's auth.audience)"
        diagnosis.record(.ok(.token, "valid for \(parsed.expiresAt - now) s more, tier \(parsed.tier), for \(audience)"
            + (command.trusted == nil ? "" : ", signer trusted")))
        return (parsed.bytes, peer, other)
    }

    private mutating func quicSteps(endpoint: RelayClientEndpoint, address: TransportAddress, serverName: String?, credentials: Credentials?) async {
        let started = ContinuousClock.now
        let token = credentials?.token ?? [0]
        let peer = credentials?.peer ?? PeerID(high: 0, low: 1)
        let client: RelayClient
        do {
            client = try await RelayClient.connect(client: endpoint, relay: address, serverName: serverName, peerID: peer, token: token)
        } catch {
            diagnosis.record(.fail(.quic, "\(error)", .init(.network, "quic_handshake_failed", "the QUIC connection could not start: \(error)")))
            return
        }
        defer { client.close() }
        // The handshake is done when ALLOCATE went out; the first frame is the relay's answer.
        let first = await client.next(timeout: stepTimeout) { event in
            if case .datagram = event { return false }
            return true
        }
        let elapsed = ContinuousClock.now - started
        guard client.isEstablished, let first, case .frame(let frame) = first else {
            let why: String
            if case .closed(let reason)? = first { why = "\(reason)" } else { why = "no handshake within \(stepTimeout.components.seconds) s" }
            let certificate = target.ca != nil && why.lowercased().contains("crypto")
            diagnosis.record(.fail(.quic, why, certificate
                ? .init(.configuration, "certificate_untrusted", "the relay's certificate does not verify against --ca \(target.ca ?? ""): check the CA and the certificate's names")
                : .init(.network, "quic_handshake_failed", "UDP may pass but QUIC does not complete: a middlebox may drop large UDP packets, or the relay's UDP port is another service")))
            diagnosis.record(.skip(.allocate, "no QUIC connection"))
            diagnosis.record(.skip(.datagrams, "no QUIC connection"))
            return
        }
        diagnosis.record(.ok(.quic, "handshake and first answer in \(Self.ms(elapsed)), ALPN zrc-relay/1"))
        guard credentials != nil else {
            diagnosis.record(.skip(.allocate, "no token"))
            diagnosis.record(.skip(.datagrams, "no token"))
            return
        }
        switch frame {
        case .allocated(let allocated):
            diagnosis.record(.ok(.allocate, "ALLOCATED in \(Self.ms(elapsed)); observed address \(allocated.observedAddress)"))
        case .error(let code, let reason):
            diagnosis.record(.fail(.allocate, "ERROR \(code.name) (\(code.rawValue))", .allocateRefused(code, reason: reason)))
            diagnosis.record(.skip(.datagrams, "ALLOCATE refused"))
            return
        case .goAway(let goAway):
            diagnosis.record(.fail(.allocate, "GOAWAY reason \(goAway.reason) alt \(goAway.alternate)", .init(
                .server, "redirected", "this instance sends clients elsewhere (\(goAway.alternate.isEmpty ? "draining" : goAway.alternate)): diagnose that address")))
            diagnosis.record(.skip(.datagrams, "ALLOCATE redirected"))
            return
        default:
            diagnosis.record(.fail(.allocate, "unexpected answer \(describe(frame))", .init(.server, "bad_answer", "the relay answered ALLOCATE with something else: is this a zrc-relay?")))
            diagnosis.record(.skip(.datagrams, "no ALLOCATED"))
            return
        }
        await roundTripStep(endpoint: endpoint, address: address, serverName: serverName, credentials: credentials, first: client)
    }

    /// Binds the other peer too, then sends the probes one way round: A → relay → B → relay → A.
    private mutating func roundTripStep(endpoint: RelayClientEndpoint, address: TransportAddress, serverName: String?,
                                        credentials: Credentials?, first: RelayClient) async {
        guard let credentials else { return }
        let echo: RelayClient
        do {
            echo = try await RelayClient.connect(client: endpoint, relay: address, serverName: serverName, peerID: credentials.other,
                                                 token: credentials.token)
        } catch {
            diagnosis.record(.fail(.datagrams, "\(error)", .init(.network, "pairing_failed", "the second peer could not connect")))
            return
        }
        defer {
            // No RELEASE: the TCP and WebSocket steps bind the same allocation next.
            first.close()
            echo.close()
        }
        let paired = await first.next(timeout: .seconds(5)) { event in
            if case .frame(.peer(.paired)) = event { return true }
            if case .closed = event { return true }
            return false
        }
        guard case .frame(.peer(.paired))? = paired else {
            diagnosis.record(.fail(.datagrams, "the two peers did not pair", .init(.server, "pairing_failed", "the relay did not pair the token's two peers")))
            return
        }
        let echoTask = Task {
            for await event in echo.events { if case .datagram(let d) = event { echo.send(d) } }
        }
        defer { echoTask.cancel() }
        let samples = RTTCollector()
        let receiver = Task {
            for await event in first.events {
                if case .datagram(let d) = event { await samples.receive(d) }
            }
        }
        defer { receiver.cancel() }
        let probes = command.probes
        for sequence in 0..<probes {
            first.send(samples.probe(sequence: UInt32(sequence), size: 64))
            try? await Task.sleep(for: .milliseconds(5))
        }
        try? await Task.sleep(for: .seconds(1))
        let rtts = await samples.sorted()
        // The largest datagram that passes: sizes tried from large to small, tagged apart.
        var largest = 0
        for size in [1200, 1150, 1100, 1000, 900, 700, 500, 300] where largest == 0 {
            let tag = UInt32(1_000_000 + size)
            let payload = samples.probe(sequence: tag, size: size)
            for _ in 0..<3 { first.send(payload) }
            try? await Task.sleep(for: .milliseconds(300))
            if await samples.contains(sequence: tag) { largest = size }
        }
        let loss = Double(probes - rtts.count) / Double(probes)
        guard !rtts.isEmpty else {
            diagnosis.record(.fail(.datagrams, "0 of \(probes) probes came back", .init(
                .network, "datagrams_lost", "QUIC connects but datagrams do not pass: a middlebox may drop them, or the relay's bandwidth cap is 0")))
            return
        }
        func percentile(_ p: Double) -> Double {
            Double(RTTCollector.percentile(p, of: rtts) ?? 0) / 1_000_000
        }
        let roundTrip = ClientDiagnosis.RoundTrip(p50Milliseconds: percentile(0.5), p99Milliseconds: percentile(0.99), loss: loss,
                                                  largestPayload: largest)
        diagnosis.roundTrip = roundTrip
        let figure = String(format: "rtt p50 %.1f ms p99 %.1f ms, loss %.1f%% of %d, largest datagram %d B",
                            roundTrip.p50Milliseconds, roundTrip.p99Milliseconds, loss * 100, probes, largest)
        if loss > 0.2 {
            diagnosis.record(.fail(.datagrams, figure, .init(.network, "heavy_loss", "over 20 % of datagrams are lost on the way: the path is congested or policed")))
        } else {
            diagnosis.record(.ok(.datagrams, figure))
        }
    }

    /// The certificate the relay serves (its TLS listener serves the same one as QUIC).
    private mutating func certificateStep(host: String, port: Int, serverName: String?) async {
        let dialer = StreamDialer(proxy: try? target.chosenProxy(), stepTimeout: .seconds(3))
        let tlsPort = target.websocketURL?.port ?? port
        guard target.websocketURL?.tls ?? !target.plainTcp else {
            diagnosis.record(.skip(.certificate, "plain TCP (no TLS)"))
            return
        }
        do {
            let (channel, _) = try await dialer.connect(host: host, port: tlsPort, tls: .init(serverName: serverName, caPath: nil,
                                                                                                  alpn: [FallbackWire.alpn, "http/1.1"]))
            defer { channel.close(promise: nil) }
            guard let certificate = try await channel.nioSSL_peerCertificate().get() else {
                diagnosis.record(.fail(.certificate, "no certificate", .init(.server, "certificate_missing", "the relay's TLS sent no certificate")))
                return
            }
            let now = time(nil)
            let daysLeft = (Int(certificate.notValidAfter) - now) / 86_400
            if certificate.notValidAfter < now {
                diagnosis.record(.fail(.certificate, "expired \(-daysLeft) days ago", .init(
                    .server, "certificate_expired", "the relay's certificate has expired: renew server.quic_cert_path and reload (SIGHUP)")))
                return
            }
            if certificate.notValidBefore > now {
                diagnosis.record(.fail(.certificate, "not valid yet", .init(
                    .server, "certificate_not_yet_valid", "the relay's certificate starts in the future: check the relay's clock or the certificate")))
                return
            }
            guard let ca = target.ca else {
                diagnosis.record(.ok(.certificate, "valid for \(daysLeft) more days; not verified (no --ca; payloads are end-to-end encrypted)"))
                return
            }
            // Chain and name, against --ca.
            do {
                let (checked, _) = try await dialer.connect(host: host, port: tlsPort, tls: .init(serverName: serverName ?? host, caPath: ca,
                                                                                                      alpn: [FallbackWire.alpn, "http/1.1"]))
                checked.close(promise: nil)
                diagnosis.record(.ok(.certificate, "valid for \(daysLeft) more days; chain and name verify against \(ca)"))
            } catch {
                diagnosis.record(.fail(.certificate, "\(error)", .init(
                    .configuration, "certificate_untrusted", "the relay's certificate does not verify against \(ca) for \(serverName ?? host): check the CA file and the certificate's names (--server-name)")))
            }
        } catch {
            diagnosis.record(.skip(.certificate, "no TLS connection (\(error))"))
        }
    }

    /// The TCP/TLS fallback or WebSocket: connect, and the relay's answer to ALLOCATE.
    private mutating func streamStep(_ step: ClientDiagnosis.Step, endpoint: RelayClientEndpoint, address: TransportAddress,
                                     host: String, serverName: String?, credentials: Credentials?) async {
        let started = ContinuousClock.now
        let token = credentials?.token ?? [0]
        let peer = credentials?.peer ?? PeerID(high: 0, low: 1)
        let proxy = try? target.chosenProxy()
        let client: RelayClient
        do {
            if step == .tcp {
                client = try await RelayClient.connectTCP(client: endpoint, relay: address, serverName: serverName, peerID: peer, token: token,
                                                          tls: !target.plainTcp, caPath: target.ca, proxy: proxy, timeout: stepTimeout)
            } else {
                client = try await RelayClient.connectWebSocket(client: endpoint, address: target.websocketAddress(for: address),
                                                                serverName: serverName, peerID: peer,
                                                                token: token, caPath: target.ca, proxy: proxy, timeout: stepTimeout)
            }
        } catch {
            let text = "\(error)"
            let failure: ClientDiagnosis.Failure
            if text.contains("proxy CONNECT") {
                failure = .init(.network, "proxy_refused", "the HTTP proxy refused to connect to the relay: ask for the relay's host and port to be allowed")
            } else if text.contains("WebSocket upgrade") {
                failure = .init(.configuration, "websocket_refused", "the server did not upgrade: check the path (fallback.websocket_path) and that fallback.websocket is on")
            } else if text.contains("ALPN") || text.contains("TLS") || text.contains("SSL") {
                failure = .init(.network, "tls_failed", "TLS to the relay failed: a middlebox may intercept TLS, or the port is another service")
            } else {
                failure = .init(.network, step == .tcp ? "tcp_unreachable" : "websocket_unreachable",
                                "TCP port \(address.port) does not accept connections: a firewall blocks it, or fallback.enabled is off")
            }
            diagnosis.record(.fail(step, text, failure))
            return
        }
        defer {
            // The last step that binds the allocation ends it.
            if credentials != nil, step == .websocket { client.release() }
            client.close()
        }
        let answer = await client.next(timeout: stepTimeout) { event in
            if case .frame = event { return true }
            if case .closed = event { return true }
            return false
        }
        let elapsed = Self.ms(ContinuousClock.now - started)
        switch answer {
        case .frame(.allocated)?:
            diagnosis.record(.ok(step, "ALLOCATED in \(elapsed)"))
        case .frame(.error(let code, _))? where credentials == nil:
            diagnosis.record(.ok(step, "connected and answered in \(elapsed) (ERROR \(code.name) to an empty token, as expected)"))
        case .frame(.error(let code, let reason))?:
            diagnosis.record(.fail(step, "ERROR \(code.name) (\(code.rawValue))", .allocateRefused(code, reason: reason)))
        default:
            diagnosis.record(.fail(step, "no answer within \(stepTimeout.components.seconds) s", .init(
                .network, "no_answer", "the connection opened but the relay said nothing: a proxy may buffer or block the stream")))
        }
    }

    /// The UDP hint depends on whether the TCP fallback works.
    private mutating func fillUDPHint(port: Int) {
        guard var udp = diagnosis.result(.udp), udp.status == .fail else { return }
        if diagnosis.result(.tcp)?.status == .ok {
            udp.hint = "UDP \(port) gets no answer: a firewall likely blocks UDP; the TCP fallback on \(port) works, so clients will fall back"
        } else if diagnosis.result(.websocket)?.status == .ok {
            udp.hint = "UDP \(port) gets no answer and the TCP fallback fails; WebSocket works, so clients will use it"
        } else {
            udp.hint = "UDP \(port) gets no answer and TCP fails too: check that the relay runs, listens on \(port), and that the firewall lets clients in"
        }
        diagnosis.record(udp)
    }

    static func ms(_ duration: Duration) -> String {
        let value = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return String(format: "%.1f ms", value)
    }
}
