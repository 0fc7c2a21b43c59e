import Crypto
import Foundation
import Logging
import QUICTransport
@testable import RelayApp
import RelayClient
import RelayConfig
import RelayCore
import RelayEngine
import ServiceLifecycleTestKit
import Testing
import ZRCTestSupport

/// The composed relay, in process: it serves, reloads, and drains on graceful shutdown.
@Suite(.serialized) struct RelayApplicationTests {
    let key = Curve25519.Signing.PrivateKey()
    var signer: SignerKey { SignerKey(bytes: key.publicKey.rawRepresentation)! }
    /// Port 0 everywhere: the kernel picks free ports, so parallel tests never collide.
    let port: UInt16 = 0

    static var quiet: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    func flags(_ extra: [String] = []) -> [String] {
        ["--server.listen-addr", "127.0.0.1", "--server.listen-port", "\(port)",
         "--metrics.listen", "127.0.0.1:0", "--auth.trusted-keys", signer.base64url,
         "--server.quic-cert-path", TestCertificate.paths.cert, "--server.quic-key-path", TestCertificate.paths.key,
         "--security.connection-rate-per-ip", "1000/min", "--security.allocation-rate-per-ip", "1000/min"] + extra
    }

    func application(flags: [String], reread: @escaping RelayApplication.ConfigurationSource,
                     drainTimeout: Duration = .seconds(5)) throws -> RelayApplication {
        let loader = try RelaySettingsLoader(fileText: nil, environment: [:], flags: flags)
        let settings = try loader.settings()
        return try RelayApplication(loader: loader, settings: settings, configuration: try StartChecks.run(settings),
                                    reread: reread, logger: Self.quiet, level: LogLevelBox(.critical),
                                    handlesSignals: false, drainTimeout: drainTimeout)
    }

    func token(peerA: PeerID, peerB: PeerID) -> [UInt8] {
        let now = UInt64(Date().timeIntervalSince1970)
        return try! RelayTokenV1.mint(signingKey: key, audience: nil, allocationID: AllocationID(high: 1, low: 2), peerA: peerA,
                                      peerB: peerB, issuedAt: now - 5, expiresAt: now + 600, tier: .unlimited,
                                      bandwidthBitsPerSecond: 0, quotaBytes: 0).bytes
    }

    /// A pair forwards through the composed relay; graceful shutdown sends GOAWAY(shutdown) to
    /// both, the relay drains (the clients leave), and `run` returns well before the drain timeout.
    @Test func servesAPairThenDrainsOnGracefulShutdown() async throws {
        let app = try application(flags: flags(), reread: { _ throws(ConfigError) in throw ConfigError(key: "t", problem: "unused") })
        let client = try RelayClientEndpoint(bindAddress: TransportAddress(ipAddress: "127.0.0.1", port: 0)!, logger: Self.quiet)
        try client.start()
        defer { client.stop() }
        let relay = app.server.endpoint.localAddress
        let (peerA, peerB) = (PeerID(high: 1, low: 1), PeerID(high: 2, low: 2))
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.run() }
                let a = try await RelayClient.connect(client: client, relay: relay, serverName: "localhost", peerID: peerA,
                                                      token: token(peerA: peerA, peerB: peerB))
                let b = try await RelayClient.connect(client: client, relay: relay, serverName: "localhost", peerID: peerB,
                                                      token: token(peerA: peerA, peerB: peerB))
                #expect(await b.next(where: { $0 == .frame(.peer(.paired)) }) != nil)
                #expect(await a.next(where: { $0 == .frame(.peer(.paired)) }) != nil)
                // Datagrams may be lost: send until one arrives.
                let sender = Task {
                    while !Task.isCancelled {
                        a.send([1, 2, 3])
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                }
                #expect(await b.next(where: { $0 == .datagram([1, 2, 3]) }) != nil)
                sender.cancel()
                #expect(await app.server.isAcceptingAllocations())

                let started = ContinuousClock.now
                trigger.triggerGracefulShutdown()
                for peer in [a, b] {
                    let goAway = await peer.next(where: {
                        if case .frame(.goAway(let g)) = $0 { return g.reason == .shutdown }
                        return false
                    })
                    #expect(goAway != nil)
                    peer.close()
                }
                try await group.next()
                #expect(ContinuousClock.now - started < .seconds(4))
                #expect(await app.server.liveCounts().boundConnections == 0)
            }
        }
    }

    /// SIGHUP's reload through the composed service: reloadable keys apply to the running
    /// relay; a restart-only key keeps its running value and is reported, not stored.
    @Test func reloadAppliesReloadableKeysAndPinsRestartOnlyOnes() async throws {
        let newKey = Curve25519.Signing.PrivateKey()
        let newSigner = SignerKey(bytes: newKey.publicKey.rawRepresentation)!
        let changed = flags(["--auth.trusted-keys", newSigner.base64url, "--server.listen-port", "4433"])
        let app = try application(flags: flags(), reread: { pinned throws(ConfigError) in
            let loader = try RelaySettingsLoader(fileText: nil, environment: [:], flags: changed, pinned: pinned)
            return (loader, try loader.settings())
        })
        let reload = try #require(app.services.compactMap { $0 as? ConfigReloadService }.first)
        try app.server.start()  // reconfiguring happens on the relay's loop
        await reload.reload()
        let (_, settings, configuration) = reload.current.withLock { $0 }
        #expect(configuration.tokens.trustedKeys == [newSigner])
        #expect(settings.server.listenPort == port)
        app.server.stop()
    }

    /// One source of truth: the core's own defaults (what tests and embedders get from the
    /// libraries) are the key table's defaults (what the binary runs with).
    @Test func coreDefaultsAreTheKeyTableDefaults() throws {
        let settings = try RelaySettingsLoader(fileText: nil, environment: [:], flags: []).settings()
        let fromTable = try settings.relayConfiguration()
        let core = RelayServerConfiguration(allocations: .init(), tokens: .init(trustedKeys: []), relayPort: settings.server.listenPort)
        #expect(fromTable.allocations.maxAllocations == core.allocations.maxAllocations)
        #expect(fromTable.allocations.maxAllocationsPerKey == core.allocations.maxAllocationsPerKey)
        #expect(fromTable.allocations.tiers == core.allocations.tiers)
        #expect(fromTable.allocations.globalBandwidthBitsPerSecond == core.allocations.globalBandwidthBitsPerSecond)
        #expect(fromTable.allocations.allocationTimeout == core.allocations.allocationTimeout)
        #expect(fromTable.allocations.pairingTimeout == core.allocations.pairingTimeout)
        #expect(fromTable.allocations.idleTimeout == core.allocations.idleTimeout)
        #expect(fromTable.tokens.audience == core.tokens.audience)
        #expect(fromTable.tokens.clockSkewSeconds == core.tokens.clockSkewSeconds)
        #expect(fromTable.tokens.maxTokenLifetimeSeconds == core.tokens.maxTokenLifetimeSeconds)
        #expect(fromTable.allocationRatePerIP.limit == core.allocationRatePerIP.limit)
        #expect(fromTable.allocationRatePerIP.window == core.allocationRatePerIP.window)
        #expect(fromTable.connectionRatePerIP.limit == core.connectionRatePerIP.limit)
        #expect(fromTable.connectionRatePerIP.window == core.connectionRatePerIP.window)
        let quic = settings.quicConfiguration()
        let quicCore = QUICConfiguration()
        #expect(quic.maxIdleTimeout == quicCore.maxIdleTimeout)
        #expect(quic.keepAliveInterval == quicCore.keepAliveInterval)
        #expect(quic.retryPolicy == quicCore.retryPolicy)
        #expect(quic.acceptRate == quicCore.acceptRate)
    }
}

/// `config check` and `serve` check the certificate and key with GnuTLS, which serves them.
@Suite struct TLSCredentialCheckTests {
    static func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// certtool's files (text before the PEM block, a SEC1 key with a leading zero byte) pass;
    /// a chain with two certificates passes; garbage and a foreign key name their file.
    @Test func certtoolFilesPassAndProblemsNameTheirFile() throws {
        let cert = Self.read(TestCertificate.paths.cert), key = Self.read(TestCertificate.paths.key)
        #expect(TLSCredentialCheck.problem(certificatePEM: cert, keyPEM: key) == nil)
        #expect(TLSCredentialCheck.problem(certificatePEM: cert + cert, keyPEM: key) == nil)
        if case .certificate = TLSCredentialCheck.problem(certificatePEM: "nothing", keyPEM: key) {} else { Issue.record("garbage certificate") }
        if case .key = TLSCredentialCheck.problem(certificatePEM: cert, keyPEM: "nothing") {} else { Issue.record("garbage key") }
        let other = FileManager.default.temporaryDirectory.appendingPathComponent("zrc-other-\(getpid()).key").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", other]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        defer { try? FileManager.default.removeItem(atPath: other) }
        if case .pair = TLSCredentialCheck.problem(certificatePEM: cert, keyPEM: Self.read(other)) {} else { Issue.record("foreign key") }
    }
}

/// The event hub never waits for a subscriber: one that falls a buffer behind is dropped.
@Suite struct EventHubTests {
    @Test func slowSubscriberIsDroppedOthersKeepReceiving() async {
        let hub = EventHub()
        #expect(!hub.hasSubscribers)
        let slow = hub.subscribe()
        for i in 0..<(EventHub.bufferSize + 10) { hub.publish("e\(i)") }
        var received = 0
        for await _ in slow { received += 1 }  // ends: it was dropped
        #expect(received == EventHub.bufferSize)
        #expect(!hub.hasSubscribers)
        let fresh = hub.subscribe()
        hub.publish("next")
        var iterator = fresh.makeAsyncIterator()
        #expect(await iterator.next() == "next")
        hub.finishAll()
    }

    @Test func subscribersAreBounded() async {
        let hub = EventHub()
        let streams = (0..<EventHub.maximumSubscribers).map { _ in hub.subscribe() }
        var extra = hub.subscribe().makeAsyncIterator()
        #expect(await extra.next() == nil)
        hub.finishAll()
        _ = streams
    }
}
