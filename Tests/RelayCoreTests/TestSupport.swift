import Crypto
@testable import RelayCore

/// Fixed keys, ids and times for core tests.
enum Fixture {
    static let deviceKey = try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 7, count: 32))
    static let otherKey = try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 9, count: 32))
    static var signer: SignerKey { SignerKey(bytes: deviceKey.publicKey.rawRepresentation)! }
    static let allocation = AllocationID(high: 0xA110C, low: 1)
    static let peerA = PeerID(high: 0xAAAA, low: 1)
    static let peerB = PeerID(high: 0xBBBB, low: 2)
    static let now: UInt64 = 1_800_000_000

    static func token(key: Curve25519.Signing.PrivateKey = deviceKey, audience: String? = nil,
                      allocation: AllocationID = allocation, peerA: PeerID = peerA, peerB: PeerID = peerB,
                      issuedAt: UInt64 = now - 10, expiresAt: UInt64 = now + 3600, tier: Tier = .free,
                      bandwidth: UInt64 = 0, quota: UInt64 = 0) -> RelayTokenV1 {
        try! RelayTokenV1.mint(signingKey: key, audience: audience, allocationID: allocation, peerA: peerA, peerB: peerB,
                               issuedAt: issuedAt, expiresAt: expiresAt, tier: tier,
                               bandwidthBitsPerSecond: bandwidth, quotaBytes: quota)
    }
}

extension RelayInstant {
    static func seconds(_ s: Double) -> RelayInstant { RelayInstant(nanoseconds: UInt64(s * 1e9) + 1_000_000_000) }
}
