import Logging
import NIOPosix
import QUICTransport
import RelayClient
import RelayCore
import RelayFallback
import Testing
import ZRCTestSupport

/// The TCP/TLS fallback listener on the same relay as the QUIC clients.
@Suite struct FallbackTests {
    /// Starts a fallback listener for `harness` on a free TCP port of 127.0.0.1.
    static func listener(for harness: RelayHarness, tls: Bool = true) async throws -> (FallbackListener, TransportAddress) {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let listener = try await FallbackListener.start(
            configuration: .init(host: "127.0.0.1", port: 0,
                                 tls: tls ? (TestCertificate.paths.cert, TestCertificate.paths.key) : nil),
            relay: harness.server, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let port = UInt16(listener.localAddress?.port ?? 0)
        return (listener, TransportAddress(ipAddress: "127.0.0.1", port: port)!)
    }

    @Test(arguments: [true, false])
    func quicAndTCPPeersShareAnAllocation(tls: Bool) async throws {
        let harness = try RelayHarness()
        defer { harness.stop() }
        let (listener, tcpAddress) = try await Self.listener(for: harness, tls: tls)
        defer { Task { await listener.stop() } }
        let token = harness.token()
        let a = try await harness.connect(peer: RelayHarness.peerA, token: token)
        #expect(await a.next(where: { $0 == .frame(.peer(.waiting)) }) != nil)
        let b = try await RelayClient.connectTCP(client: harness.client, relay: tcpAddress, peerID: RelayHarness.peerB,
                                                 token: token, tls: tls)
        #expect(b.transport == .tcp)
        #expect(await b.next(where: { $0 == .frame(.peer(.paired)) }) != nil)
        #expect(await a.next(where: { $0 == .frame(.peer(.paired)) }) != nil)

        // Paced: a QUIC sender's queue holds 128 datagrams, and QUIC may drop beyond it.
        for i in 0..<200 {
            a.send([0xA, UInt8(i)] + [UInt8](repeating: UInt8(i), count: i * 5))
            b.send([0xB, UInt8(i)] + [UInt8](repeating: UInt8(i), count: i * 5))
            if i % 25 == 24 { try await Task.sleep(for: .milliseconds(10)) }
        }
        var fromA: [[UInt8]] = []
        while fromA.count < 200, case .datagram(let d)? = await b.next(where: { if case .datagram = $0 { true } else { false } }) {
            fromA.append(d)
        }
        var fromB: [[UInt8]] = []
        while fromB.count < 200, case .datagram(let d)? = await a.next(where: { if case .datagram = $0 { true } else { false } }) {
            fromB.append(d)
        }
        // TCP delivers in order and loses nothing; the QUIC side may reorder nothing here either.
        #expect(fromA == (0..<200).map { [0xA, UInt8($0)] + [UInt8](repeating: UInt8($0), count: $0 * 5) })
        #expect(Set(fromB) == Set((0..<200).map { [0xB, UInt8($0)] + [UInt8](repeating: UInt8($0), count: $0 * 5) }))
        let counters = await harness.server.counters()
        #expect(counters.connections[.tcp] == 1)
        // Counted by the transport the datagram leaves on.
        #expect(counters.packetsForwarded[.tcp] == 200)
        #expect(counters.packetsForwarded[.quic] == 200)
        a.close()
        b.close()
    }

    @Test func fallbackClientGetsErrorForABadToken() async throws {
        let harness = try RelayHarness()
        defer { harness.stop() }
        let (listener, tcpAddress) = try await Self.listener(for: harness)
        defer { Task { await listener.stop() } }
        let b = try await RelayClient.connectTCP(client: harness.client, relay: tcpAddress, peerID: RelayHarness.peerB, token: [1, 2, 3])
        let error = await b.next(where: { if case .frame(.error) = $0 { true } else { false } })
        #expect(error.map { if case .frame(.error(let code, _)) = $0 { code == .invalidToken } else { false } } == true)
        let closed = await b.next(where: { if case .closed = $0 { true } else { false } })
        #expect(closed != nil)
    }

    @Test func connectWithFallbackUsesTCPWhenQUICGetsNoAnswer() async throws {
        let harness = try RelayHarness()
        defer { harness.stop() }
        // Only TCP listens on this port: QUIC to it gets nothing back, as when UDP is blocked.
        let (listener, tcpAddress) = try await Self.listener(for: harness)
        defer { Task { await listener.stop() } }
        let token = harness.token()
        let a = try await harness.connect(peer: RelayHarness.peerA, token: token)
        let b = try await RelayClient.connectWithFallback(client: harness.client, relay: tcpAddress, peerID: RelayHarness.peerB,
                                                          token: token, quicTimeout: .milliseconds(500))
        #expect(b.transport == .tcp)
        #expect(await b.next(where: { $0 == .frame(.peer(.paired)) }) != nil)
        let quic = try await RelayClient.connectWithFallback(client: harness.client, relay: harness.relayAddress,
                                                             peerID: RelayHarness.peerA, token: token)
        #expect(quic.transport == .quic)
        a.close()
        b.close()
        quic.close()
    }
}
