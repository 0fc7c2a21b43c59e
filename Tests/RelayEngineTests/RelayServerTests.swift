import Foundation
import QUICTransport
import RelayClient
import RelayCore
@testable import RelayEngine
import Testing

@Suite(.serialized) struct RelayServerTests {
    @Test func pairsAndForwardsTenThousandDatagramsEachWayByteIdentical() async throws {
        let h = try RelayHarness()
        defer { h.stop() }
        let (a, b) = try await h.pair(token: h.token())
        func payloads(_ tag: UInt8) -> [[UInt8]] {
            (0..<10_000).map { i in [tag, UInt8(i >> 8), UInt8(i & 0xFF)] + [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: i % 1100) }
        }
        let fromA = payloads(0xA), fromB = payloads(0xB)
        async let gotAtB = collectDatagrams(b, count: fromA.count, timeout: .seconds(60))
        async let gotAtA = collectDatagrams(a, count: fromB.count, timeout: .seconds(60))
        // Paced (about 6 000/s each way) so a loaded 2-core CI machine does not overflow the
        // relay's 100 ms send queue: the test is about byte-identical delivery, not capacity.
        for start in stride(from: 0, to: 10_000, by: 25) {
            a.send(batch: Array(fromA[start..<start + 25]))
            b.send(batch: Array(fromB[start..<start + 25]))
            try await Task.sleep(for: .milliseconds(4))
        }
        let (atB, atA) = await (gotAtB, gotAtA)
        #expect(atB.count == fromA.count)
        #expect(atA.count == fromB.count)
        #expect(Set(atB) == Set(fromA))
        #expect(Set(atA) == Set(fromB))
        let counters = await h.server.counters()
        #expect(counters.packetsForwarded[.quic] == 20_000)
    }

    @Test func tokenRefusalsCarryTheirErrorCodes() async throws {
        let other = Curve25519SigningKey()
        let h = try RelayHarness { $0.tokens.audience = "fleet" }
        defer { h.stop() }
        let now = h.nowUnix
        let cases: [([UInt8], RelayErrorCode)] = [
            ([1, 2, 3], .invalidToken),
            (h.token(key: other, audience: "fleet"), .untrustedKey),
            (h.token(audience: "other-fleet"), .wrongAudience),
            (h.token(audience: "fleet", issuedAt: now + 600), .tokenNotYetValid),
            (h.token(audience: "fleet", issuedAt: now - 7200, expiresIn: 3600), .tokenExpired),
            (h.token(audience: "fleet", issuedAt: now - 10, expiresIn: 200_000), .invalidToken),
        ]
        for (token, code) in cases {
            let c = try await h.connect(peer: RelayHarness.peerA, token: token)
            let error = await c.next { $0.errorCode != nil }
            #expect(error?.errorCode == code, "expected \(code)")
            let closed = await c.next { if case .closed = $0 { true } else { false } }
            #expect(closed?.closeCode == UInt64(code.rawValue))
        }
        let c = try await h.connect(peer: PeerID(high: 1, low: 1), token: h.token(audience: "fleet"))
        #expect(await c.next { $0.errorCode != nil }?.errorCode == .unknownPeer)
    }

    @Test func malformedControlFrameIsBadMessage() async throws {
        let h = try RelayHarness()
        defer { h.stop() }
        let c = try await h.connect(peer: RelayHarness.peerA, token: h.token())
        #expect(await c.next { $0 == .frame(.peer(.waiting)) } != nil)
        c.sendControl([0x42, 0, 0])
        #expect(await c.next { $0.errorCode != nil }?.errorCode == .badMessage)
        #expect(await c.next { if case .closed = $0 { true } else { false } }?.closeCode == 1)
    }

    @Test func mismatchCapacityAndRateLimit() async throws {
        let h = try RelayHarness { config in
            config.allocations.maxAllocations = 1
            config.allocationRatePerIP = (4, .seconds(60))
        }
        defer { h.stop() }
        let a = try await h.connect(peer: RelayHarness.peerA, token: h.token())
        #expect(await a.next { $0 == .frame(.peer(.waiting)) } != nil)
        let mismatch = try await h.connect(peer: RelayHarness.peerA, token: h.token(peerB: PeerID(high: 3, low: 3)))
        #expect(await mismatch.next { $0.errorCode != nil }?.errorCode == .allocationMismatch)
        let full = try await h.connect(peer: RelayHarness.peerA, token: h.token(allocation: AllocationID(high: 9, low: 9)))
        #expect(await full.next { $0.errorCode != nil }?.errorCode == .capacity)
        let bogus = try await h.connect(peer: RelayHarness.peerA, token: [0])
        #expect(await bogus.next { $0.errorCode != nil }?.errorCode == .invalidToken)
        let limited = try await h.connect(peer: RelayHarness.peerA, token: h.token())
        #expect(await limited.next { $0.errorCode != nil }?.errorCode == .rateLimited)
    }

    @Test func quotaIsExactNoticedOnceThenEndsAndIsRemembered() async throws {
        let h = try RelayHarness()
        defer { h.stop() }
        let token = h.token(quota: 10_000)
        let (a, b) = try await h.pair(token: token)
        guard case .frame(.allocated(let allocated))? = await Optional(RelayClientEvent.frame(.peer(.paired))) else { return }
        _ = allocated
        let quotaSeen = Task { await a.next(timeout: .seconds(20)) { if case .frame(.quota) = $0 { true } else { false } } }
        async let delivered = collectDatagrams(b, count: 100, timeout: .seconds(20))
        for i in 0..<101 {
            a.send([UInt8](repeating: UInt8(i), count: 100))
            if i % 10 == 9 { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(await delivered.count == 100)  // exactly 10 000 bytes, never more
        #expect(await quotaSeen.value == .frame(.quota(used: 9_000, quota: 10_000)))
        #expect(await a.next { $0.errorCode != nil }?.errorCode == .quotaExceeded)
        let counters = await h.server.counters()
        #expect(counters.allocationsEnded[.quotaExceeded] == 1)
        #expect(counters.bytesForwarded[.quic] == 10_000)
        let again = try await h.connect(peer: RelayHarness.peerA, token: token)
        #expect(await again.next { $0.errorCode != nil }?.errorCode == .allocationEnded)
    }

    @Test func releaseEndsBothSides() async throws {
        let h = try RelayHarness()
        defer { h.stop() }
        let (a, b) = try await h.pair(token: h.token())
        a.release()
        #expect(await a.next { $0.errorCode != nil }?.errorCode == .released)
        #expect(await b.next { $0.errorCode != nil }?.errorCode == .released)
        #expect(await b.next { if case .closed = $0 { true } else { false } }?.closeCode == 14)
    }

    @Test func reconnectionReplacesTheOldConnection() async throws {
        let h = try RelayHarness()
        defer { h.stop() }
        let token = h.token()
        let (a, b) = try await h.pair(token: token)
        let a2 = try await h.connect(peer: RelayHarness.peerA, token: token)
        #expect(await a.next { if case .frame(.goAway) = $0 { true } else { false } } == .frame(.goAway(.init(reason: .replaced))))
        #expect(await a.next { if case .closed = $0 { true } else { false } }?.closeCode == 0)
        #expect(await a2.next { $0 == .frame(.peer(.paired)) } != nil)
        a2.send([1, 2, 3])
        #expect(await b.next { $0.isDatagram } == .datagram([1, 2, 3]))
        b.send([4, 5])
        #expect(await a2.next { $0.isDatagram } == .datagram([4, 5]))
    }

    @Test func peerGoneThenBackThenIdleTimeout() async throws {
        let h = try RelayHarness { $0.allocations.idleTimeout = .seconds(1) }
        defer { h.stop() }
        let token = h.token()
        let (a, b) = try await h.pair(token: token)
        a.close()
        #expect(await b.next { $0 == .frame(.peer(.peerGone)) } != nil)
        let a2 = try await h.connect(peer: RelayHarness.peerA, token: token)
        #expect(await a2.next { $0 == .frame(.peer(.paired)) } != nil)
        #expect(await b.next { $0 == .frame(.peer(.paired)) } != nil)
        a2.close()
        #expect(await b.next { $0 == .frame(.peer(.peerGone)) } != nil)
        #expect(await b.next(timeout: .seconds(5)) { $0.errorCode != nil }?.errorCode == .peerTimeout)
    }

    @Test func pairingTimeout() async throws {
        let h = try RelayHarness { $0.allocations.pairingTimeout = .seconds(1) }
        defer { h.stop() }
        let a = try await h.connect(peer: RelayHarness.peerA, token: h.token())
        #expect(await a.next { $0 == .frame(.peer(.waiting)) } != nil)
        #expect(await a.next(timeout: .seconds(5)) { $0.errorCode != nil }?.errorCode == .peerTimeout)
    }

    @Test func refreshExtendsExpiry() async throws {
        let h = try RelayHarness()
        defer { h.stop() }
        let (a, _) = try await h.pair(token: h.token(expiresIn: 600))
        let newer = h.token(expiresIn: 1200)
        a.refresh(token: newer)
        guard case .frame(.refreshed(let expires))? = await a.next(where: { if case .frame(.refreshed) = $0 { true } else { false } }) else {
            Issue.record("no REFRESHED")
            return
        }
        #expect(expires >= h.nowUnix + 1100)
        a.refresh(token: [9, 9])
        #expect(await a.next { $0.errorCode != nil }?.errorCode == .invalidToken)
    }

    @Test func revocationEndsLiveAllocationsAndRefusesTheToken() async throws {
        let h = try RelayHarness()
        defer { h.stop() }
        let token = h.token()
        let (a, _) = try await h.pair(token: token)
        await h.server.revoke(allocationID: RelayHarness.allocation)
        #expect(await a.next { $0.errorCode != nil }?.errorCode == .revoked)
        let again = try await h.connect(peer: RelayHarness.peerA, token: h.token(allocation: RelayHarness.allocation))
        #expect(await again.next { $0.errorCode != nil }?.errorCode == .revoked)
    }

    @Test func bandwidthCapHoldsDeliveredRateAndSendsStatus() async throws {
        let h = try RelayHarness()
        defer { h.stop() }
        // 2 Mbit/s cap; offer 5 Mbit/s of 1000-byte datagrams (625/s) for 3 s.
        let (a, b) = try await h.pair(token: h.token(tier: .free, bandwidth: 2_000_000))
        let arrivals = Mutex<[ContinuousClock.Instant]>([])
        let reader = Task {
            for await event in b.events where event.isDatagram { arrivals.withLock { $0.append(.now) } }
        }
        let status = Task { await a.next(timeout: .seconds(10)) { if case .frame(.status) = $0 { true } else { false } } }
        let start = ContinuousClock.now
        var sent = 0
        while ContinuousClock.now - start < .seconds(3) {
            let due = Int(Double((ContinuousClock.now - start).components.attoseconds) / 1e18 * 625
                          + Double((ContinuousClock.now - start).components.seconds) * 625)
            if due > sent {
                a.send(batch: (sent..<due).map { _ in [UInt8](repeating: 7, count: 1000) })
                sent = due
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        try await Task.sleep(for: .milliseconds(300))
        reader.cancel()
        let times = arrivals.withLock { $0 }
        let window = times.filter { $0 - start >= .milliseconds(500) && $0 - start < .milliseconds(3000) }
        let rate = Double(window.count * 1000 * 8) / 2.5
        #expect(abs(rate - 2_000_000) / 2_000_000 <= 0.05, "delivered \(rate) bit/s")
        if case .frame(.status(.throttled, let dropped))? = await status.value { #expect(dropped > 0) } else {
            Issue.record("no STATUS throttled")
        }
        #expect(await h.server.counters().packetsDropped[.bandwidth, default: 0] > 0)
    }
}

import Crypto
import Synchronization

func Curve25519SigningKey() -> Curve25519.Signing.PrivateKey { Curve25519.Signing.PrivateKey() }

/// Inputs that once tripped ngtcp2's assertions or were held forever (issue "Hostile peers").
@Suite(.serialized) struct RelayServerHostileInputTests {
    @Test func emptyDatagramsAreForwardedBothWays() async throws {
        let h = try RelayHarness()
        defer { h.stop() }
        let (a, b) = try await h.pair(token: h.token())
        async let gotAtB = collectDatagrams(b, count: 3, timeout: .seconds(10))
        a.send(batch: [[], [1, 2, 3], []])
        let atB = await gotAtB
        #expect(atB.sorted { $0.count < $1.count } == [[], [], [1, 2, 3]])
        async let gotAtA = collectDatagrams(a, count: 2, timeout: .seconds(10))
        b.send(batch: [[], []])
        #expect(await gotAtA == [[], []])
        let counters = await h.server.counters()
        #expect(counters.packetsForwarded[.quic] == 5)
    }

    @Test func allocateDeadlinesExpireInConnectionOrder() {
        func at(_ seconds: Double) -> RelayInstant { RelayInstant(nanoseconds: UInt64(seconds * 1e9)) }
        var d = AllocateDeadlines(grace: .seconds(10))
        for i in 0..<3000 { d.watch(ConnectionHandle(UInt64(i)), now: at(Double(i) / 100)) }
        #expect(d.expired(now: at(9.99)).isEmpty)
        #expect(d.expired(now: at(10)) == [ConnectionHandle(0)])
        let next = d.expired(now: at(30))
        #expect(next.count == 2000)
        #expect(next.first == ConnectionHandle(1) && next.last == ConnectionHandle(2000))
        #expect(d.count == 999)
        #expect(d.expired(now: at(100)).count == 999)
        #expect(d.count == 0)
    }
}
