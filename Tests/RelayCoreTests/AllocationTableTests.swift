import Testing
@testable import RelayCore

@Suite struct AllocationTableTests {
    static let addressing = AllocationTable.Addressing(relayPort: 4433, relayAddress: "relay", observedAddress: "1.2.3.4:5")
    let c1 = ConnectionHandle(1), c2 = ConnectionHandle(2), c3 = ConnectionHandle(3), c4 = ConnectionHandle(4)

    func table(_ configure: (inout AllocationTable.Configuration) -> Void = { _ in }) -> AllocationTable {
        var config = AllocationTable.Configuration(pairingTimeout: .seconds(60), idleTimeout: .seconds(30))
        configure(&config)
        return AllocationTable(configuration: config)
    }

    func frames(_ actions: [AllocationAction], to c: ConnectionHandle) -> [ControlFrame] {
        actions.compactMap { if case .send(let f, let to) = $0, to == c { return f } else { return nil } }
    }

    func closes(_ actions: [AllocationAction]) -> [ConnectionHandle: RelayErrorCode] {
        var out: [ConnectionHandle: RelayErrorCode] = [:]
        for a in actions { if case .close(let c, let code) = a { out[c] = code } }
        return out
    }

    func endedOutcome(_ actions: [AllocationAction]) -> AllocationOutcome? {
        for a in actions { if case .event(.ended(_, let outcome, _, _, _, _, _, _)) = a { return outcome } }
        return nil
    }

    func paired(_ t: inout AllocationTable, token: RelayTokenV1 = Fixture.token(), at now: RelayInstant = .seconds(0)) {
        _ = t.allocate(connection: c1, peer: Fixture.peerA, token: token, addressing: Self.addressing, now: now, nowUnix: Fixture.now)
        _ = t.allocate(connection: c2, peer: Fixture.peerB, token: token, addressing: Self.addressing, now: now, nowUnix: Fixture.now)
    }

    func forward(_ t: inout AllocationTable, from c: ConnectionHandle, _ length: Int, at now: RelayInstant,
                 _ actions: inout [AllocationAction]) -> ForwardDecision {
        t.forwardDatagram(from: c, length: length, now: now, actions: &actions)
    }

    @Test func firstAllocateWaitsAndTheSecondPairs() {
        var t = table()
        let first = t.allocate(connection: c1, peer: Fixture.peerA, token: Fixture.token(), addressing: Self.addressing,
                               now: .seconds(0), nowUnix: Fixture.now)
        let allocated = ControlFrame.Allocated(allocationID: Fixture.allocation, expiresAt: Fixture.now + 3600,
                                               bandwidthBitsPerSecond: 10_000_000, quotaBytes: 1_000_000_000,
                                               relayPort: 4433, relayAddress: "relay", observedAddress: "1.2.3.4:5")
        #expect(frames(first, to: c1) == [.allocated(allocated), .peer(.waiting)])
        #expect(first.contains(.event(.created(Fixture.allocation, tier: .free, signer: Fixture.signer))))
        let second = t.allocate(connection: c2, peer: Fixture.peerB, token: Fixture.token(), addressing: Self.addressing,
                                now: .seconds(1), nowUnix: Fixture.now)
        #expect(frames(second, to: c2) == [.allocated(allocated), .peer(.paired)])
        #expect(frames(second, to: c1) == [.peer(.paired)])
        #expect(second.contains(.event(.paired(Fixture.allocation))))
        var actions: [AllocationAction] = []
        #expect(forward(&t, from: c1, 100, at: .seconds(1), &actions) == .forward(to: c2))
        #expect(forward(&t, from: c2, 100, at: .seconds(1), &actions) == .forward(to: c1))
        #expect(actions.isEmpty)
    }

    @Test func datagramsBeforePairingAreUnpaired() {
        var t = table()
        var actions: [AllocationAction] = []
        #expect(forward(&t, from: c1, 10, at: .seconds(0), &actions) == .drop(.unpaired))
        _ = t.allocate(connection: c1, peer: Fixture.peerA, token: Fixture.token(), addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        #expect(forward(&t, from: c1, 10, at: .seconds(0), &actions) == .drop(.unpaired))
    }

    @Test func refusalsCarryTheirCodes() {
        var t = table { $0.maxAllocations = 2; $0.maxAllocationsPerKey = 1 }
        let stranger = PeerID(high: 9, low: 9)
        var a = t.allocate(connection: c1, peer: stranger, token: Fixture.token(), addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        #expect(closes(a) == [c1: .unknownPeer])
        #expect(frames(a, to: c1).first.map { if case .error(.unknownPeer, _) = $0 { true } else { false } } == true)
        _ = t.allocate(connection: c1, peer: Fixture.peerA, token: Fixture.token(), addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        a = t.allocate(connection: c1, peer: Fixture.peerA, token: Fixture.token(), addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        #expect(closes(a) == [c1: .badMessage])
        // Same id, different peers → allocation_mismatch.
        a = t.allocate(connection: c2, peer: Fixture.peerA, token: Fixture.token(peerB: stranger), addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        #expect(closes(a) == [c2: .allocationMismatch])
        // Same id, other signer → allocation_mismatch.
        a = t.allocate(connection: c2, peer: Fixture.peerB, token: Fixture.token(key: Fixture.otherKey), addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        #expect(closes(a) == [c2: .allocationMismatch])
        // Per-key capacity.
        a = t.allocate(connection: c3, peer: Fixture.peerA, token: Fixture.token(allocation: ID16(high: 5, low: 5)), addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        #expect(closes(a) == [c3: .capacity])
        // Global capacity.
        _ = t.allocate(connection: c3, peer: Fixture.peerA, token: Fixture.token(key: Fixture.otherKey, allocation: ID16(high: 6, low: 6)), addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        a = t.allocate(connection: c4, peer: Fixture.peerA, token: Fixture.token(key: Fixture.otherKey, allocation: ID16(high: 7, low: 7)), addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        #expect(closes(a) == [c4: .capacity])
    }

    @Test func replacementSendsGoAwayAndRebinds() {
        var t = table()
        paired(&t)
        let a = t.allocate(connection: c3, peer: Fixture.peerA, token: Fixture.token(), addressing: Self.addressing, now: .seconds(5), nowUnix: Fixture.now)
        #expect(frames(a, to: c1) == [.goAway(.init(reason: .replaced))])
        #expect(closes(a) == [c1: .replaced])
        #expect(frames(a, to: c3).last == .peer(.paired))
        #expect(frames(a, to: c2).isEmpty)  // the other side never lost its peer
        var actions: [AllocationAction] = []
        #expect(forward(&t, from: c2, 10, at: .seconds(5), &actions) == .forward(to: c3))
        #expect(forward(&t, from: c1, 10, at: .seconds(5), &actions) == .drop(.unpaired))
        // The old connection's close is not a departure.
        #expect(t.connectionClosed(c1, now: .seconds(6)).isEmpty)
        #expect(forward(&t, from: c3, 10, at: .seconds(6), &actions) == .forward(to: c2))
    }

    @Test func aSideThatLeavesAndReturnsRepairs() {
        var t = table()
        paired(&t)
        #expect(frames(t.connectionClosed(c1, now: .seconds(10)), to: c2) == [.peer(.peerGone)])
        var actions: [AllocationAction] = []
        #expect(forward(&t, from: c2, 10, at: .seconds(11), &actions) == .drop(.unpaired))
        let back = t.allocate(connection: c3, peer: Fixture.peerA, token: Fixture.token(), addressing: Self.addressing, now: .seconds(20), nowUnix: Fixture.now)
        #expect(frames(back, to: c3).last == .peer(.paired))
        #expect(frames(back, to: c2) == [.peer(.paired)])
        #expect(t.expire(now: .seconds(45), nowUnix: Fixture.now).isEmpty)
    }

    @Test func idleTimeoutEndsWithPeerTimeout() {
        var t = table()
        paired(&t)
        _ = t.connectionClosed(c1, now: .seconds(10))
        #expect(t.expire(now: .seconds(39), nowUnix: Fixture.now).isEmpty)
        let a = t.expire(now: .seconds(40), nowUnix: Fixture.now)
        #expect(closes(a) == [c2: .peerTimeout])
        #expect(endedOutcome(a) == .peerTimeout)
        #expect(t.count == 0)
    }

    @Test func pairingTimeoutEndsWithPeerTimeout() {
        var t = table()
        _ = t.allocate(connection: c1, peer: Fixture.peerA, token: Fixture.token(), addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        #expect(t.expire(now: .seconds(59), nowUnix: Fixture.now).isEmpty)
        let a = t.expire(now: .seconds(60), nowUnix: Fixture.now)
        #expect(closes(a) == [c1: .peerTimeout])
        #expect(frames(a, to: c1).first.map { if case .error(.peerTimeout, _) = $0 { true } else { false } } == true)
    }

    @Test func tokenExpiryAndAllocationTimeoutEndWithAllocationExpired() {
        var t = table { $0.allocationTimeout = .seconds(100) }
        paired(&t, token: Fixture.token(expiresAt: Fixture.now + 3600))
        #expect(t.expire(now: .seconds(1), nowUnix: Fixture.now + 99).isEmpty)
        let a = t.expire(now: .seconds(2), nowUnix: Fixture.now + 100)
        #expect(closes(a) == [c1: .allocationExpired, c2: .allocationExpired])
        #expect(endedOutcome(a) == .expired)
        var u = table()
        paired(&u, token: Fixture.token(expiresAt: Fixture.now + 50))
        #expect(endedOutcome(u.expire(now: .seconds(1), nowUnix: Fixture.now + 50)) == .expired)
    }

    @Test func endedIdsAreRememberedUntilTheTokenExpires() {
        var t = table()
        paired(&t, token: Fixture.token(expiresAt: Fixture.now + 600))
        let released = t.release(connection: c1, now: .seconds(1))
        #expect(closes(released) == [c1: .released, c2: .released])
        #expect(endedOutcome(released) == .released)
        let again = t.allocate(connection: c3, peer: Fixture.peerA, token: Fixture.token(expiresAt: Fixture.now + 600),
                               addressing: Self.addressing, now: .seconds(2), nowUnix: Fixture.now + 10)
        #expect(closes(again) == [c3: .allocationEnded])
        _ = t.expire(now: .seconds(3), nowUnix: Fixture.now + 600)
        #expect(!t.hasEnded(Fixture.allocation))
    }

    @Test func quotaIsExactNoticedOnceAndEnds() {
        var t = table()
        paired(&t, token: Fixture.token(quota: 1000))
        var actions: [AllocationAction] = []
        for _ in 0..<8 { #expect(forward(&t, from: c1, 100, at: .seconds(1), &actions) == .forward(to: c2)) }
        #expect(actions.isEmpty)
        #expect(forward(&t, from: c2, 100, at: .seconds(1), &actions) == .forward(to: c1))  // 900 = 90 %
        #expect(frames(actions, to: c1) == [.quota(used: 900, quota: 1000)])
        #expect(frames(actions, to: c2) == [.quota(used: 900, quota: 1000)])
        actions.removeAll()
        #expect(forward(&t, from: c1, 100, at: .seconds(1), &actions) == .forward(to: c2))  // exactly 1000
        #expect(actions.isEmpty)  // QUOTA only once
        #expect(forward(&t, from: c1, 1, at: .seconds(1), &actions) == .drop(.quota))
        #expect(closes(actions) == [c1: .quotaExceeded, c2: .quotaExceeded])
        if case .event(.ended(_, .quotaExceeded, 900, 100, _, let usage, _, _))? = actions.last { #expect(usage == 1.0) } else {
            Issue.record("ended event with bytes each way expected, got \(actions)")
        }
        let again = t.allocate(connection: c3, peer: Fixture.peerA, token: Fixture.token(quota: 1000), addressing: Self.addressing, now: .seconds(2), nowUnix: Fixture.now)
        #expect(closes(again) == [c3: .allocationEnded])
    }

    @Test func bandwidthDropsSendStatusAtMostEveryFiveSeconds() {
        var t = table()
        paired(&t, token: Fixture.token(bandwidth: 8_000))  // 1000 B/s, depth 1500 B
        var actions: [AllocationAction] = []
        #expect(forward(&t, from: c1, 1500, at: .seconds(0), &actions) == .forward(to: c2))
        #expect(forward(&t, from: c1, 1500, at: .seconds(0), &actions) == .drop(.bandwidth))
        #expect(frames(actions, to: c1) == [.status(kind: .throttled, dropped: 1)])
        actions.removeAll()
        for i in 1...10 { _ = forward(&t, from: c1, 1500, at: .seconds(Double(i) * 0.01), &actions) }
        #expect(frames(actions, to: c1).isEmpty)
        #expect(forward(&t, from: c1, 1500, at: .seconds(5.0), &actions) == .forward(to: c2))
        #expect(forward(&t, from: c1, 1500, at: .seconds(5.0), &actions) == .drop(.bandwidth))
        #expect(frames(actions, to: c1) == [.status(kind: .throttled, dropped: 11)])
        // The other direction has its own bucket.
        #expect(forward(&t, from: c2, 1500, at: .seconds(5.0), &actions) == .forward(to: c1))
    }

    @Test func globalBucketAppliesAcrossAllocations() {
        var t = table { $0.globalBandwidthBitsPerSecond = 12_000 }  // depth 1500 B
        paired(&t, token: Fixture.token(tier: .unlimited))
        var actions: [AllocationAction] = []
        #expect(forward(&t, from: c1, 1500, at: .seconds(0), &actions) == .forward(to: c2))
        #expect(forward(&t, from: c2, 1500, at: .seconds(0), &actions) == .drop(.globalBandwidth))
    }

    @Test func tierAndTokenLimitsCombine() {
        #expect(TierLimits.effective(token: 0, tier: 100) == 100)
        #expect(TierLimits.effective(token: 50, tier: 100) == 50)
        #expect(TierLimits.effective(token: 500, tier: 100) == 100)
        #expect(TierLimits.effective(token: 500, tier: 0) == 500)
        #expect(TierLimits.effective(token: 0, tier: 0) == 0)
        var t = table()
        let a = t.allocate(connection: c1, peer: Fixture.peerA, token: Fixture.token(tier: .paid, bandwidth: 100_000_000), addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        guard case .allocated(let body)? = frames(a, to: c1).first else { Issue.record("no ALLOCATED"); return }
        #expect(body.bandwidthBitsPerSecond == 40_000_000)
        #expect(body.quotaBytes == 4_000_000_000)
    }

    @Test func refreshExtendsOrRefusesWithoutSideEffects() {
        var t = table()
        paired(&t, token: Fixture.token(expiresAt: Fixture.now + 600))
        #expect(frames(t.refresh(connection: c1, token: Fixture.token(expiresAt: Fixture.now + 1200)), to: c1)
                == [.refreshed(expiresAt: Fixture.now + 1200)])
        let wrong = t.refresh(connection: c1, token: Fixture.token(allocation: ID16(high: 1, low: 1)))
        #expect(closes(wrong).isEmpty)
        #expect(frames(wrong, to: c1).first.map { if case .error(.allocationMismatch, _) = $0 { true } else { false } } == true)
        #expect(t.expire(now: .seconds(1), nowUnix: Fixture.now + 700).isEmpty)
        #expect(frames(t.refresh(connection: c4, token: Fixture.token()), to: c4).count == 1)
    }

    @Test func adminRevocationAndDrainingEndAllocations() {
        var t = table()
        paired(&t)
        #expect(endedOutcome(t.terminate(Fixture.allocation, now: .seconds(1))) == .adminTerminated)
        var u = table()
        paired(&u)
        let r = u.revoke(signer: Fixture.signer, now: .seconds(1))
        #expect(closes(r) == [c1: .revoked, c2: .revoked])
        var v = table()
        paired(&v)
        #expect(endedOutcome(v.revoke(allocationID: Fixture.allocation, now: .seconds(1))) == .revoked)
        var w = table()
        paired(&w)
        #expect(Set(w.boundConnections) == [c1, c2])
        #expect(endedOutcome(w.endAll(now: .seconds(1))) == .draining)
        #expect(w.count == 0 && w.boundConnectionCount == 0)
    }

    @Test func snapshotsDescribeAllocations() {
        var t = table()
        paired(&t)
        var actions: [AllocationAction] = []
        _ = forward(&t, from: c1, 10, at: .seconds(2), &actions)
        let s = t.snapshot(now: .seconds(3))
        #expect(s.count == 1)
        #expect(s.first?.state == .paired)
        #expect(s.first?.bytesAToB == 10)
        #expect(t.snapshot(of: Fixture.allocation, now: .seconds(3))?.age == .seconds(3))
    }
}

@Suite struct EndedAllocationsTests {
    func id(_ n: UInt64) -> AllocationID { AllocationID(high: 0xE, low: n) }

    @Test func remembersUntilExpiryAndForgetsTheOldestBeyondCapacity() {
        var e = EndedAllocations(capacity: 3)
        for n in UInt64(1)...5 { e.insert(id(n), until: 1000 + n) }
        #expect(e.count == 3)
        #expect(e.forgottenCount == 2)
        #expect(!e.remembers(id(1)) && !e.remembers(id(2)))
        let fresh = e.contains(id(3), nowUnix: 900)
        #expect(fresh)
        let expired = e.contains(id(3), nowUnix: 1003)
        #expect(!expired)
        e.forgetExpired(nowUnix: 1005)
        #expect(e.count == 0)
    }

    @Test func anIdEndedAgainIsKeptAsTheNewest() {
        var e = EndedAllocations(capacity: 2)
        e.insert(id(1), until: 100)
        e.insert(id(2), until: 100)
        e.insert(id(1), until: 200)  // ends again: now the newest, with the later expiry
        e.insert(id(3), until: 100)
        #expect(e.remembers(id(1)) && e.remembers(id(3)) && !e.remembers(id(2)))
        let kept = e.contains(id(1), nowUnix: 150)
        #expect(kept)
    }

    @Test func memoryStaysBoundedUnderChurn() {
        var e = EndedAllocations(capacity: 100)
        for n in 0..<100_000 { e.insert(id(UInt64(n % 300)), until: UInt64(n)) }
        #expect(e.count <= 100)
    }
}
