import Foundation
import Testing
@testable import QUICTransport

@Suite(.serialized) struct QUICEndpointTests {
    /// Work handed to a stopped endpoint still runs (an async call made during shutdown, a
    /// late `/metrics` scrape, must return rather than wait forever).
    @Test func executeAfterStopStillRuns() async throws {
        let pair = try QUICPair()
        pair.stop()
        let count = await onLoop(pair.server) { $0.connectionCount }
        #expect(count == 0)
    }

    @Test func handshakeAndDatagramEcho() async throws {
        let pair = try QUICPair()
        defer { pair.stop() }
        let id = try #require(await pair.connect())
        #expect(await pair.clientEvents.wait { $0.established.contains(id) })
        let payloads: [[UInt8]] = (0..<200).map { i in (0..<(1 + i * 5 % 1100)).map { UInt8(truncatingIfNeeded: $0 &+ i) } }
        for chunk in stride(from: 0, to: payloads.count, by: 20) {
            let slice = Array(payloads[chunk..<min(chunk + 20, payloads.count)])
            let results = await onLoop(pair.client) { endpoint in
                slice.map { payload in (try? endpoint.connection(withID: id)?.sendDatagram(payload).get()) != nil }
            }
            #expect(results.allSatisfy { $0 })
            try await Task.sleep(for: .milliseconds(2))
        }
        #expect(await pair.clientEvents.wait { ($0.datagrams[id]?.count ?? 0) == payloads.count })
        let received = pair.clientEvents.state.withLock { $0.datagrams[id] ?? [] }
        #expect(received.sorted { $0.lexicographicallyPrecedes($1) } == payloads.sorted { $0.lexicographicallyPrecedes($1) })
    }

    @Test func controlStreamCarriesOrderedBytesBothWays() async throws {
        let pair = try QUICPair()
        defer { pair.stop() }
        let id = try #require(await pair.connect())
        #expect(await pair.clientEvents.wait { $0.established.contains(id) })
        let message = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        await onLoop(pair.client) { endpoint in endpoint.connection(withID: id)?.writeControl(message) }
        #expect(await pair.clientEvents.wait { ($0.control[id]?.count ?? 0) == message.count })
        #expect(pair.clientEvents.state.withLock { $0.control[id] } == message)
    }

    @Test func routesManyConnectionsByConnectionID() async throws {
        let pair = try QUICPair()
        defer { pair.stop() }
        var ids: [UInt64] = []
        for _ in 0..<20 { ids.append(try #require(await pair.connect())) }
        #expect(await pair.clientEvents.wait { state in ids.allSatisfy { state.established.contains($0) } })
        let allIDs = ids
        await onLoop(pair.client) { endpoint in
            for id in allIDs {
                for n in 0..<10 { endpoint.connection(withID: id)?.sendDatagram(Array("\(id)-\(n)".utf8)) }
            }
        }
        #expect(await pair.clientEvents.wait { state in allIDs.allSatisfy { (state.datagrams[$0]?.count ?? 0) == 10 } })
        let datagrams = pair.clientEvents.state.withLock { $0.datagrams }
        for id in allIDs {
            #expect(Set(datagrams[id] ?? []) == Set((0..<10).map { Array("\(id)-\($0)".utf8) }))
        }
    }

    @Test func idleTimeoutClosesASilentConnection() async throws {
        let pair = try QUICPair(configure: { config in
            config.maxIdleTimeout = .seconds(1)
            config.keepAliveInterval = nil
        }, configureClient: { config in
            config.keepAliveInterval = nil
        })
        defer { pair.stop() }
        let id = try #require(await pair.connect())
        #expect(await pair.clientEvents.wait { $0.established.contains(id) })
        #expect(await pair.serverEvents.wait(timeout: .seconds(5)) { $0.closed.values.contains(.idleTimeout) })
        #expect(await pair.clientEvents.wait(timeout: .seconds(5)) { $0.closed[id] == .idleTimeout })
        #expect(await onLoop(pair.server) { $0.connectionCount } == 0)
    }

    @Test func keepAliveHoldsAnIdleConnectionOpen() async throws {
        let pair = try QUICPair(configure: { config in
            config.maxIdleTimeout = .seconds(1)
            config.keepAliveInterval = .milliseconds(300)
        })
        defer { pair.stop() }
        let id = try #require(await pair.connect())
        #expect(await pair.clientEvents.wait { $0.established.contains(id) })
        try await Task.sleep(for: .seconds(2))
        #expect(pair.clientEvents.state.withLock { $0.closed[id] } == nil)
        await onLoop(pair.client) { endpoint in endpoint.connection(withID: id)?.sendDatagram([1, 2, 3]) }
        #expect(await pair.clientEvents.wait { $0.datagrams[id] == [[1, 2, 3]] })
    }

    @Test func applicationCloseReachesThePeerWithItsCode() async throws {
        let pair = try QUICPair()
        defer { pair.stop() }
        let id = try #require(await pair.connect())
        #expect(await pair.serverEvents.wait { !$0.established.isEmpty })
        let serverID = pair.serverEvents.state.withLock { $0.established[0] }
        await onLoop(pair.server) { endpoint in endpoint.connection(withID: serverID)?.close(errorCode: 7, reason: "capacity") }
        #expect(await pair.clientEvents.wait {
            $0.closed[id] == .closedByPeer(errorCode: 7, isApplicationError: true, reason: "capacity")
        })
        #expect(pair.serverEvents.state.withLock { $0.closed[serverID] } == .closedLocally(errorCode: 7, isApplicationError: true))
    }

    @Test func refusedAdmissionNeverCreatesAConnection() async throws {
        let pair = try QUICPair()
        defer { pair.stop() }
        pair.serverEvents.admission = .refuse
        let id = try #require(await pair.connect())
        #expect(await pair.clientEvents.wait { $0.closed[id] != nil })
        #expect(pair.clientEvents.state.withLock { $0.established.isEmpty })
        #expect(await onLoop(pair.server) { $0.connectionCount } == 0)
    }

    @Test func retryRoundTripWhenForced() async throws {
        let pair = try QUICPair(configure: { $0.retryPolicy = .always })
        defer { pair.stop() }
        let id = try #require(await pair.connect())
        #expect(await pair.clientEvents.wait { $0.established.contains(id) })
        #expect(pair.server.counters.retriesSent.load(ordering: .relaxed) == 1)
        await onLoop(pair.client) { endpoint in endpoint.connection(withID: id)?.sendDatagram([9]) }
        #expect(await pair.clientEvents.wait { $0.datagrams[id] == [[9]] })
    }

    @Test func releasesEverythingAfterManyConnectCloseCycles() async throws {
        let pair = try QUICPair()
        defer { pair.stop() }
        func cycle(_ count: Int) async throws {
            for _ in 0..<count {
                let id = try #require(await pair.connect())
                #expect(await pair.clientEvents.wait { $0.established.contains(id) })
                await onLoop(pair.client) { endpoint in endpoint.connection(withID: id)?.close(errorCode: 0) }
                #expect(await pair.clientEvents.wait { $0.closed[id] != nil })
            }
        }
        try await cycle(100)
        #expect(await pair.serverEvents.wait(timeout: .seconds(10)) { $0.closed.count == 100 })
        let baseline = residentBytes()
        try await cycle(900)
        #expect(await pair.serverEvents.wait(timeout: .seconds(20)) { $0.closed.count == 1000 })
        // Closing/draining periods last 3×PTO; then every connection is gone on both sides.
        let drained = await waitUntil(timeout: .seconds(10)) {
            let server = await onLoop(pair.server) { $0.connectionCount }
            let client = await onLoop(pair.client) { $0.connectionCount }
            return server == 0 && client == 0
        }
        #expect(drained)
        #expect(await onLoop(pair.server) { $0.slabs.inUse } == 0)
        let growth = residentBytes() - baseline
        // A leaked connection holds ~50 KB of ngtcp2 + GnuTLS state, so 900 leaks are ~45 MB.
        // The bound leaves room for the other suites that run in this process at the same time
        // (RSS is the whole process's): 4 MiB was crossed by their noise alone.
        #expect(growth < 16 * 1024 * 1024, "RSS grew by \(growth) bytes over 900 cycles")
    }
}

func waitUntil(timeout: Duration, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

/// The client's background QUIC probe (a Version Negotiation request).
@Suite struct QUICReachabilityTests {
    @Test func aQUICServerAnswersTheProbeAClosedPortDoesNot() async throws {
        let pair = try QUICPair()
        defer { pair.stop() }
        #expect(await QUICReachability.answers(pair.server.localAddress, timeout: .seconds(2)))
        let closed = pair.server.localAddress
        pair.stop()  // nothing listens there any more
        #expect(await QUICReachability.answers(closed, timeout: .milliseconds(600)) == false)
        #expect(QUICReachability.probePacket().count == 1200)
        #expect(QUICReachability.probePacket()[1...4] == [0x1A, 0x2A, 0x3A, 0x4A])
    }
}
