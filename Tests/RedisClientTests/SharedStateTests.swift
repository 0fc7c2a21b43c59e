import Foundation
import Logging
import RedisClient
import RedisSharedState
import RelayCore
import SharedState
import Testing

/// The shared-state contract, run against both implementations: the in-memory store (shared
/// mode) and Redis on a real `redis-server`. Leases and heartbeats use short TTLs and real time.
@Suite(.serialized)
struct SharedStateContractTests {
    static let signer = SignerKey(bytes: [UInt8](repeating: 7, count: 32))!
    static let otherSigner = SignerKey(bytes: [UInt8](repeating: 8, count: 32))!

    static func record(_ id: AllocationID, owner: String, signer: SignerKey = signer) -> SharedAllocation {
        let now = UInt64(Date().timeIntervalSince1970)
        return SharedAllocation(id: id, owner: owner, signer: signer, peerA: ID16(high: 1, low: 1), peerB: ID16(high: 2, low: 2),
                                tier: .paid, bandwidthBitsPerSecond: 8_000_000, quotaBytes: 1_000_000, createdAt: now,
                                expiresAt: now + 600, tokenExpiresAt: now + 600, latestEnd: now + 3600)
    }

    static func instance(_ id: String, allocations: Int = 0) -> FleetInstance {
        FleetInstance(id: id, region: "local", publicAddress: "127.0.0.\(id.last.map { String($0) } ?? "9"):4433",
                      startedAt: 1, allocations: allocations)
    }

    /// Runs `body` with each implementation.
    static func withEachStore(_ body: (any SharedState) async throws -> Void) async throws {
        try await body(InMemorySharedState(isShared: true))
        let server = try RedisServerProcess()
        defer { server.stop() }
        let redis = RedisSharedState(url: server.url, prefix: "t\(UInt32.random(in: 0...UInt32.max)):", logger: Logger(label: "test"))
        try await body(redis)
        await redis.close()
    }

    static let ttl = Duration.milliseconds(400)

    @Test func ownershipRedirectTakeoverAndLoss() async throws {
        try await Self.withEachStore { store in
            let id = ID16(high: 0xA, low: 1)
            try await store.heartbeat(Self.instance("relay1"), ttl: Self.ttl)
            try await store.heartbeat(Self.instance("relay2"), ttl: .seconds(30))
            #expect(try await store.claim(ClaimRequest(record: Self.record(id, owner: "relay1"), hasRoom: true, leaseTTL: Self.ttl)) == .created)
            // Another live instance is redirected to the owner; a foreign signer is a mismatch.
            #expect(try await store.claim(ClaimRequest(record: Self.record(id, owner: "relay2"), hasRoom: true, leaseTTL: .seconds(30)))
                    == .ownedElsewhere(owner: "relay1", address: "127.0.0.1:4433"))
            #expect(try await store.claim(ClaimRequest(record: Self.record(id, owner: "relay2", signer: Self.otherSigner),
                                                       hasRoom: true, leaseTTL: .seconds(30))) == .mismatch)
            // The owner flushes usage, then dies: after its heartbeat lapses the other takes over.
            var used = Self.record(id, owner: "relay1")
            used.usedBytes = 4242
            used.bytesAToB = 4000
            used.bytesBToA = 242
            used.state = .paired
            #expect(try await store.sync([used], instance: "relay1", leaseTTL: Self.ttl) == SyncResult())
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await store.claim(ClaimRequest(record: Self.record(id, owner: "relay2"), hasRoom: false, leaseTTL: .seconds(30))) == .noRoom)
            guard case .takenOver(let carried) = try await store.claim(
                ClaimRequest(record: Self.record(id, owner: "relay2"), hasRoom: true, leaseTTL: .seconds(30))) else {
                Issue.record("expected a takeover")
                return
            }
            #expect(carried.usedBytes == 4242 && carried.bytesAToB == 4000 && carried.state == .paired && carried.expiresAt == used.expiresAt)
            // The old owner comes back: its sync finds the allocation lost to relay2.
            try await store.heartbeat(Self.instance("relay1"), ttl: .seconds(30))
            let result = try await store.sync([used], instance: "relay1", leaseTTL: .seconds(30))
            #expect(result.lost == [id: "127.0.0.2:4433"])
            #expect(try await store.allocation(id)?.owner == "relay2")
        }
    }

    @Test func endingsReleasesAndAdminTermination() async throws {
        try await Self.withEachStore { store in
            try await store.heartbeat(Self.instance("relay1"), ttl: .seconds(30))
            try await store.heartbeat(Self.instance("relay2"), ttl: .seconds(30))
            let ended = ID16(high: 0xB, low: 1)
            let released = ID16(high: 0xB, low: 2)
            let deleted = ID16(high: 0xB, low: 3)
            for id in [ended, released, deleted] {
                #expect(try await store.claim(ClaimRequest(record: Self.record(id, owner: "relay1"), hasRoom: true, leaseTTL: .seconds(30))) == .created)
            }
            #expect(Set(try await store.allocations().map(\.id)) == [ended, released, deleted])
            // Ended on its owner: remembered fleet-wide, record gone.
            try await store.end(ended, until: UInt64(Date().timeIntervalSince1970) + 60)
            #expect(try await store.claim(ClaimRequest(record: Self.record(ended, owner: "relay2"), hasRoom: true, leaseTTL: .seconds(30))) == .ended)
            #expect(try await store.allocation(ended) == nil)
            // Drain hand-over: the lease is released, the next instance takes over at once.
            try await store.release([released], instance: "relay2")  // not relay2's: no effect
            #expect(try await store.claim(ClaimRequest(record: Self.record(released, owner: "relay2"), hasRoom: true, leaseTTL: .seconds(30)))
                    == .ownedElsewhere(owner: "relay1", address: "127.0.0.1:4433"))
            try await store.release([released], instance: "relay1")
            guard case .takenOver = try await store.claim(
                ClaimRequest(record: Self.record(released, owner: "relay2"), hasRoom: true, leaseTTL: .seconds(30))) else {
                Issue.record("expected a takeover after release")
                return
            }
            // Admin delete from another instance: the owner's next sync learns it ended.
            #expect(try await store.terminate(deleted, until: UInt64(Date().timeIntervalSince1970) + 60))
            #expect(try await store.terminate(ID16(high: 0xB, low: 99), until: UInt64(Date().timeIntervalSince1970) + 60) == false)
            let result = try await store.sync([Self.record(deleted, owner: "relay1")], instance: "relay1", leaseTTL: .seconds(30))
            #expect(result.endedElsewhere == [deleted])
            #expect(try await store.allocation(deleted) == nil)
        }
    }

    @Test func instancesRevocationsBlocksAndChannels() async throws {
        try await Self.withEachStore { store in
            try await store.heartbeat(Self.instance("relay1", allocations: 5), ttl: .seconds(30))
            try await store.heartbeat(Self.instance("relay2", allocations: 2), ttl: Self.ttl)
            #expect(try await store.instances().map(\.id) == ["relay1", "relay2"])
            #expect(FleetInstance.leastLoaded(try await store.instances(), region: "local", excluding: "relay1")?.id == "relay2")
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await store.instances().map(\.id) == ["relay1"])
            try await store.leave(instance: "relay1")
            #expect(try await store.instances().isEmpty)

            let now = UInt64(Date().timeIntervalSince1970)
            let target = RevocationList.Target.allocation(ID16(high: 0xC, low: 1))
            try await store.addRevocation(.init(target: target, until: now + 100))
            try await store.addRevocation(.init(target: target, until: now + 50))  // the later until wins
            try await store.addRevocation(.init(target: .signer(Self.signer), until: now - 1))  // already lapsed
            #expect(try await store.revocations() == [.init(target: target, until: now + 100)])
            #expect(try await store.removeRevocation(target))
            #expect(try await store.removeRevocation(target) == false)

            try await store.addBlock(SharedBlockEntry(cidr: "192.0.2.0/24", reason: "abuse report", expiresAt: nil))
            try await store.addBlock(SharedBlockEntry(cidr: "198.51.100.0/24", reason: nil, expiresAt: now - 1))
            #expect(try await store.blocks() == [SharedBlockEntry(cidr: "192.0.2.0/24", reason: "abuse report", expiresAt: nil)])
            #expect(try await store.removeBlock(cidr: "192.0.2.0/24"))

            // Published until it arrives (the subscription is made in the background; a message
            // sent before it is lost, as in Redis), for at most 10 s.
            let orders = store.controlMessages()
            let order = ControlMessage.terminate(ID16(high: 0xC, low: 2))
            let publisher = Task {
                while !Task.isCancelled {
                    try? await store.publish(order)
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            let first = await withTaskGroup(of: ControlMessage?.self) { group in
                group.addTask {
                    var iterator = orders.makeAsyncIterator()
                    return await iterator.next()
                }
                group.addTask {
                    try? await Task.sleep(for: .seconds(10))
                    return nil
                }
                let winner = await group.next() ?? nil
                group.cancelAll()
                return winner
            }
            publisher.cancel()
            #expect(first == order)
            try await store.publishEvent("{\"event\":\"allocation_created\"}")
        }
    }

    @Test func redisUnreachableIsAnErrorNamingTheOperation() async throws {
        let port = try RedisServerProcess.freePort()
        let store = RedisSharedState(url: try RedisURL(parsing: "redis://127.0.0.1:\(port)"), prefix: "x:",
                                     timeout: .milliseconds(300), logger: Logger(label: "test"))
        await #expect(throws: SharedStateError.self) {
            _ = try await store.claim(ClaimRequest(record: Self.record(ID16(high: 1, low: 1), owner: "a"), hasRoom: true, leaseTTL: .seconds(1)))
        }
        do {
            try await store.heartbeat(Self.instance("a"), ttl: .seconds(1))
            Issue.record("heartbeat succeeded without Redis")
        } catch {
            #expect(error.operation == "heartbeat")
        }
    }
}

/// The pure parts: record, block entry and control message forms.
struct SharedStateFormTests {
    @Test func recordFieldsRoundTripAndRefuseHalfRecords() throws {
        var record = SharedStateContractTests.record(ID16(high: 9, low: 9), owner: "relay1")
        record.usedBytes = 77
        record.state = .peerGone
        let fields = Dictionary(uniqueKeysWithValues: record.fields)
        #expect(SharedAllocation(fields: fields) == record)
        for field in ["id", "signer", "peer_a", "quota", "expires"] {
            var partial = fields
            partial[field] = nil
            #expect(SharedAllocation(fields: partial) == nil, "without \(field)")
        }
        var bad = fields
        bad["tier"] = "9"
        #expect(SharedAllocation(fields: bad) == nil)
        bad = fields
        bad["used"] = "-1"
        #expect(SharedAllocation(fields: bad) == nil)
    }

    @Test func controlMessagesRoundTripAndGarbageIsRefused() {
        let messages: [ControlMessage] = [
            .revoke(.allocation(ID16(high: 1, low: 2)), until: 1_800_000_000),
            .revoke(.signer(SharedStateContractTests.signer), until: 5),
            .unrevoke(.signer(SharedStateContractTests.signer)),
            .terminate(ID16(high: 3, low: 4)),
            .block(SharedBlockEntry(cidr: "2001:db8::/32", reason: nil, expiresAt: 99)),
            .block(SharedBlockEntry(cidr: "10.0.0.0/8", reason: nil, expiresAt: nil)),
            .unblock(cidr: "10.0.0.0/8"),
        ]
        for message in messages { #expect(ControlMessage(text: message.text) == message, "\(message.text)") }
        for garbage in ["", "revoke", "revoke zz 1", "terminate 1234", "terminate \(String(repeating: "g", count: 32))",
                        "block x 10.0.0.0/8", "unblock", "launch missiles", String(repeating: "a", count: 5000),
                        "revoke \(ID16(high: 1, low: 1)) -5", "terminate \(ID16(high: 1, low: 1)) extra"] {
            #expect(ControlMessage(text: garbage) == nil, "\(garbage.prefix(40))")
        }
    }

    @Test func blockEntryValueRoundTripsWithSpacesInTheReason() {
        let entry = SharedBlockEntry(cidr: "192.0.2.1/32", reason: "abuse: see ticket 42", expiresAt: 1234)
        #expect(SharedBlockEntry(cidr: entry.cidr, value: entry.value) == entry)
        #expect(SharedBlockEntry(cidr: "x", value: "0 ") == SharedBlockEntry(cidr: "x", reason: nil, expiresAt: nil))
        #expect(SharedBlockEntry(cidr: "x", value: "soon") == nil)
    }

    @Test func leastLoadedSkipsDrainingOtherRegionsAndItself() {
        let instances = [
            FleetInstance(id: "a", region: "eu", publicAddress: "a:1", startedAt: 0, allocations: 1),
            FleetInstance(id: "b", region: "eu", publicAddress: "b:1", startedAt: 0, draining: true, allocations: 0),
            FleetInstance(id: "c", region: "us", publicAddress: "c:1", startedAt: 0, allocations: 0),
            FleetInstance(id: "d", region: "eu", publicAddress: "d:1", startedAt: 0, allocations: 3),
            FleetInstance(id: "e", region: "eu", publicAddress: "e:1", startedAt: 0, allocations: 1),
        ]
        #expect(FleetInstance.leastLoaded(instances, region: "eu", excluding: "x")?.id == "a")
        #expect(FleetInstance.leastLoaded(instances, region: "eu", excluding: "a")?.id == "e")
        #expect(FleetInstance.leastLoaded(instances, region: "us", excluding: "c") == nil)
    }
}
