import Crypto
import Foundation
import Logging
import QUICTransport
import RelayClient
import RelayCore
import Synchronization
@testable import RelayEngine
import ZRCTestSupport

/// A relay on 127.0.0.1 with its own device key, and a client endpoint to reach it.
final class RelayHarness: @unchecked Sendable {
    let server: RelayServer
    let client: RelayClientEndpoint
    let key = Curve25519.Signing.PrivateKey()
    var signer: SignerKey { SignerKey(bytes: key.publicKey.rawRepresentation)! }
    var relayAddress: TransportAddress { server.endpoint.localAddress }

    init(configure: (inout RelayServerConfiguration) -> Void = { _ in }) throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var quic = QUICConfiguration()
        quic.certificatePath = TestCertificate.paths.cert
        quic.privateKeyPath = TestCertificate.paths.key
        quic.retryPolicy = .never
        let signer = SignerKey(bytes: key.publicKey.rawRepresentation)!
        var configuration = RelayServerConfiguration(
            allocations: .init(pairingTimeout: .seconds(10), idleTimeout: .seconds(10)),
            tokens: .init(trustedKeys: [signer]), relayPort: 0)
        configuration.allocationRatePerIP = (1000, .seconds(60))
        configuration.connectionRatePerIP = (1000, .seconds(60))
        configure(&configuration)
        let loopback = TransportAddress(ipAddress: "127.0.0.1", port: 0)!
        server = try RelayServer(quic: quic, bindAddress: loopback, configuration: configuration, logger: logger)
        client = try RelayClientEndpoint(bindAddress: loopback, logger: logger)
        try server.start()
        try client.start()
    }

    func stop() {
        client.stop()
        server.stop()
    }

    static let peerA = PeerID(high: 0xA, low: 1)
    static let peerB = PeerID(high: 0xB, low: 2)
    static let allocation = AllocationID(high: 0xC0FFEE, low: 7)

    var nowUnix: UInt64 { UInt64(Date().timeIntervalSince1970) }

    func token(key: Curve25519.Signing.PrivateKey? = nil, audience: String? = nil, allocation: AllocationID = allocation,
               peerA: PeerID = peerA, peerB: PeerID = peerB, issuedAt: UInt64? = nil, expiresIn: UInt64 = 3600,
               tier: Tier = .unlimited, bandwidth: UInt64 = 0, quota: UInt64 = 0) -> [UInt8] {
        let issued = issuedAt ?? nowUnix - 5
        return try! RelayTokenV1.mint(signingKey: key ?? self.key, audience: audience, allocationID: allocation, peerA: peerA,
                                      peerB: peerB, issuedAt: issued, expiresAt: issued + expiresIn, tier: tier,
                                      bandwidthBitsPerSecond: bandwidth, quotaBytes: quota).bytes
    }

    func connect(peer: PeerID, token: [UInt8]) async throws -> RelayClient {
        try await RelayClient.connect(client: client, relay: relayAddress, serverName: "localhost", peerID: peer, token: token)
    }

    /// Connects both peers and waits until both are paired.
    func pair(token: [UInt8]) async throws -> (RelayClient, RelayClient) {
        let a = try await connect(peer: Self.peerA, token: token)
        guard await a.next(where: { $0 == .frame(.peer(.waiting)) }) != nil else { throw HarnessError("A never waited") }
        let b = try await connect(peer: Self.peerB, token: token)
        guard await b.next(where: { $0 == .frame(.peer(.paired)) }) != nil,
              await a.next(where: { $0 == .frame(.peer(.paired)) }) != nil
        else { throw HarnessError("never paired") }
        return (a, b)
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension RelayClientEvent {
    /// The ERROR code, if this is an ERROR frame.
    var errorCode: RelayErrorCode? {
        if case .frame(.error(let code, _)) = self { return code }
        return nil
    }

    var closeCode: UInt64? {
        if case .closed(.closedByPeer(let code, true, _)) = self { return code }
        return nil
    }

    var isDatagram: Bool {
        if case .datagram = self { return true }
        return false
    }
}

/// Collects datagrams from a client until `count` arrived or `timeout` passed; returns what came.
func collectDatagrams(_ client: RelayClient, count: Int, timeout: Duration) async -> [[UInt8]] {
    let box = Mutex<[[UInt8]]>([])
    let reader = Task {
        for await event in client.events {
            if case .datagram(let d) = event {
                let n = box.withLock { $0.append(d); return $0.count }
                if n >= count { break }
            }
        }
    }
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline, box.withLock({ $0.count }) < count {
        try? await Task.sleep(for: .milliseconds(10))
    }
    reader.cancel()
    return box.withLock { $0 }
}
