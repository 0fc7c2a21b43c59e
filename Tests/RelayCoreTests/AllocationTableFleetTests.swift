import Testing
@testable import RelayCore

/// The table's part in a fleet (DESIGN §8): terms for a claim, taking an allocation over with
/// its caps, expiry and usage, giving one up to another owner, and ids ended elsewhere.
@Suite struct AllocationTableFleetTests {
    static let addressing = AllocationTable.Addressing(relayPort: 4433, relayAddress: "relay", observedAddress: "1.2.3.4:5")
    let c1 = ConnectionHandle(1), c2 = ConnectionHandle(2)

    func table(_ configure: (inout AllocationTable.Configuration) -> Void = { _ in }) -> AllocationTable {
        var config = AllocationTable.Configuration(pairingTimeout: .seconds(60), idleTimeout: .seconds(30))
        configure(&config)
        return AllocationTable(configuration: config)
    }

    func carried(used: UInt64, quota: UInt64 = 1000, pairedBefore: Bool = true, createdAgo: UInt64 = 10) -> AllocationTable.CarriedAllocation {
        AllocationTable.CarriedAllocation(
            id: Fixture.allocation, signer: Fixture.signer, peerA: Fixture.peerA, peerB: Fixture.peerB, tier: .paid,
            bandwidthBitsPerSecond: 0, quotaBytes: quota, usedBytes: used, bytesAToB: used, bytesBToA: 0,
            createdAtUnix: Fixture.now - createdAgo, expiresAt: Fixture.now + 100, tokenExpiresAt: Fixture.now + 3600,
            latestEnd: Fixture.now + 100, pairedBefore: pairedBefore)
    }

    @Test func termsAreWhatANewAllocationGets() {
        let t = table { $0.tiers[.free] = TierLimits(bandwidthBitsPerSecond: 8000, quotaBytes: 500); $0.allocationTimeout = .seconds(60) }
        let terms = t.terms(for: Fixture.token(bandwidth: 16_000, quota: 100), nowUnix: Fixture.now)
        #expect(terms.bandwidthBitsPerSecond == 8000)  // narrowed to the tier
        #expect(terms.quotaBytes == 100)                // narrower than the tier
        #expect(terms.expiresAt == Fixture.now + 60)    // allocation_timeout before the token's expiry
        #expect(terms.tokenExpiresAt == Fixture.now + 3600 && terms.latestEnd == Fixture.now + 60 && terms.usedBytes == 0)
    }

    @Test func roomCountsBothLimits() {
        var t = table { $0.maxAllocations = 2; $0.maxAllocationsPerKey = 1 }
        #expect(t.hasRoom(for: Fixture.signer))
        t.adopt(carried(used: 0), now: .seconds(0), nowUnix: Fixture.now)
        #expect(!t.hasRoom(for: Fixture.signer))
        #expect(t.hasRoom(for: SignerKey(bytes: [UInt8](repeating: 1, count: 32))!))
    }

    @Test func aTakenOverAllocationKeepsItsUsageExpiryAndQuota() {
        var t = table()
        t.adopt(carried(used: 900), now: .seconds(100), nowUnix: Fixture.now)
        t.adopt(carried(used: 0), now: .seconds(100), nowUnix: Fixture.now)  // already live: no-op
        #expect(t.contains(Fixture.allocation) && t.count == 1)
        let token = Fixture.token(tier: .paid)
        let first = t.allocate(connection: c1, peer: Fixture.peerA, token: token, addressing: Self.addressing,
                               now: .seconds(100), nowUnix: Fixture.now)
        // Paired before: the returning peer hears that its peer is gone; expiry and quota carried.
        #expect(first.contains(.send(.peer(.peerGone), to: c1)))
        #expect(first.contains { if case .send(.allocated(let a), _) = $0 { a.expiresAt == Fixture.now + 100 && a.quotaBytes == 1000 } else { false } })
        #expect(!first.contains { if case .event(.created) = $0 { true } else { false } })
        let second = t.allocate(connection: c2, peer: Fixture.peerB, token: token, addressing: Self.addressing,
                                now: .seconds(100), nowUnix: Fixture.now)
        #expect(second.contains(.send(.peer(.paired), to: c2)) && second.contains(.send(.peer(.paired), to: c1)))
        // 900 of 1000 used: 100 more bytes pass, the next datagram ends it at the quota.
        var actions: [AllocationAction] = []
        #expect(t.forwardDatagram(from: c1, length: 100, now: .seconds(100), actions: &actions) == .forward(to: c2))
        #expect(actions.isEmpty)  // the 90 % notice was already due before the takeover
        #expect(t.forwardDatagram(from: c1, length: 1, now: .seconds(100), actions: &actions) == .drop(.quota))
        #expect(actions.contains(.close(c1, code: .quotaExceeded)))
        #expect(actions.contains { if case .event(.ended(_, .quotaExceeded, 1000, 0, _, _, _, _)) = $0 { true } else { false } })
    }

    @Test func aTakenOverAllocationNobodyReturnsToEndsAtTheIdleTimeout() {
        var t = table()
        t.adopt(carried(used: 0), now: .seconds(0), nowUnix: Fixture.now)
        #expect(t.expire(now: .seconds(29), nowUnix: Fixture.now).isEmpty)
        let actions = t.expire(now: .seconds(31), nowUnix: Fixture.now)
        #expect(actions.contains { if case .event(.ended(_, .peerTimeout, _, _, _, _, _, _)) = $0 { true } else { false } })
        // Never paired and created long ago: the pairing timeout has already passed.
        var u = table()
        u.adopt(carried(used: 0, pairedBefore: false, createdAgo: 120), now: .seconds(200), nowUnix: Fixture.now)
        #expect(u.expire(now: .seconds(200), nowUnix: Fixture.now).contains { if case .event(.ended(_, .peerTimeout, _, _, _, _, _, _)) = $0 { true } else { false } })
    }

    @Test func forgettingRedirectsTheSidesAndRemembersNothing() {
        var t = table()
        let token = Fixture.token()
        _ = t.allocate(connection: c1, peer: Fixture.peerA, token: token, addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        _ = t.allocate(connection: c2, peer: Fixture.peerB, token: token, addressing: Self.addressing, now: .seconds(0), nowUnix: Fixture.now)
        let goAway = ControlFrame.GoAway(reason: .redirect, tryForMilliseconds: 5000, alternate: "10.0.0.2:4433")
        let actions = t.forget(Fixture.allocation, goAway: goAway)
        #expect(actions == [.send(.goAway(goAway), to: c1), .close(c1, code: .replaced),
                            .send(.goAway(goAway), to: c2), .close(c2, code: .replaced)])
        #expect(!t.contains(Fixture.allocation) && !t.isBound(c1) && !t.hasEnded(Fixture.allocation))
        #expect(t.hasRoom(for: Fixture.signer))
        #expect(t.forget(Fixture.allocation, goAway: goAway).isEmpty)
    }

    @Test func anIdEndedElsewhereIsRefusedHere() {
        var t = table()
        t.rememberEnded(Fixture.allocation, until: Fixture.now + 60)
        #expect(t.endedUntil(Fixture.allocation) == Fixture.now + 60)
        let actions = t.allocate(connection: c1, peer: Fixture.peerA, token: Fixture.token(), addressing: Self.addressing,
                                 now: .seconds(0), nowUnix: Fixture.now)
        #expect(actions.contains(.close(c1, code: .allocationEnded)))
    }
}
