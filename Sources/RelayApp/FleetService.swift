import Foundation
import Logging
import RelayCore
import RelayEngine
import ServiceLifecycle
import SharedState
import Synchronization

/// This instance's part in the fleet (DESIGN §8), as a `Service`: a heartbeat every
/// `redis.heartbeat_interval`, usage and leases synced every `redis.usage_flush_interval`,
/// control orders applied as they arrive, revocations and API block entries reconciled
/// every heartbeat (a missed order is applied within one interval anyway), event lines
/// published, and the drain's hand-over. Started before the relay, so it stops after it.
final class FleetService: Service, Sendable {
    let state: any SharedState
    let server: RelayServer
    let identity: FleetInstance
    let heartbeatInterval: Duration
    let flushInterval: Duration
    /// How long a lease outlives its last renewal (3 renewals).
    let leaseTTL: Duration
    private let logger: Logger
    private let healthy = Atomic<Bool>(false)
    private let draining = Atomic<Bool>(false)
    /// The last fleet view (for `/admin/stats`).
    private let lastInstances = Mutex<[FleetInstance]>([])
    private let applied = Mutex(Applied())
    private let events: AsyncStream<String>
    private let eventSink: AsyncStream<String>.Continuation

    /// What this instance has applied from the shared lists (to apply only changes).
    private struct Applied {
        var revocations: Set<RevocationList.Target> = []
        var blocks: Set<String> = []
    }

    init(state: any SharedState, server: RelayServer, identity: FleetInstance, heartbeatInterval: Duration,
         flushInterval: Duration, leaseTTL: Duration, logger: Logger) {
        self.leaseTTL = leaseTTL
        self.state = state
        self.server = server
        self.identity = identity
        self.heartbeatInterval = heartbeatInterval
        self.flushInterval = flushInterval
        self.logger = logger
        (events, eventSink) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(4096))
    }

    /// The heartbeat record lives 3 intervals: an instance is dead 3 intervals after its last beat.
    var heartbeatTTL: Duration { heartbeatInterval * 3 }

    /// Whether the shared state answered the last heartbeat (`/ready`).
    var isHealthy: Bool { healthy.load(ordering: .relaxed) }

    var instances: [FleetInstance] { lastInstances.withLock { $0 } }

    /// Queues an event line for `<prefix>events` (dropped, oldest first, beyond 4096 queued).
    func publish(event line: String) { eventSink.yield(line) }

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.heartbeats() }
            group.addTask { await self.syncs() }
            group.addTask { await self.applyOrders() }
            group.addTask { await self.publishEvents() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        eventSink.finish()
        do throws(SharedStateError) {
            try await state.leave(instance: identity.id)
        } catch {
            logger.notice("could not remove this instance's heartbeat at exit", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Loops

    private func heartbeats() async {
        while !Task.isCancelled {
            await beat()
            try? await Task.sleep(for: heartbeatInterval)
        }
    }

    private func beat() async {
        var instance = identity
        instance.draining = draining.load(ordering: .relaxed)
        instance.allocations = await server.liveCounts().allocations
        do throws(SharedStateError) {
            try await state.heartbeat(instance, ttl: heartbeatTTL)
            let live = try await state.instances()
            lastInstances.withLock { $0 = live }
            await server.recordFleet(instancesByRegion: Dictionary(live.map { ($0.region, 1) }, uniquingKeysWith: +))
            try await reconcileLists()
            if !healthy.exchange(true, ordering: .relaxed) {
                logger.notice("shared state reachable: accepting allocations", metadata: ["instance": "\(identity.id)"])
            }
        } catch {
            await server.recordSharedStateError(error.operation)
            if healthy.exchange(false, ordering: .relaxed) {
                logger.warning("shared state unreachable: live allocations keep forwarding, new ones are refused (unavailable)",
                               metadata: ["error": "\(error.reason)", "operation": "\(error.operation)"])
            }
        }
    }

    private func syncs() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: flushInterval)
            await sync()
        }
    }

    /// Writes usage and renews leases; reports endings not yet written.
    func sync() async {
        let (records, ends) = await server.fleetSyncBatch()
        var failed: [(AllocationID, UInt64)] = []
        for (index, (id, until)) in ends.enumerated() {
            do throws(SharedStateError) {
                try await state.end(id, until: until)
            } catch {
                failed = Array(ends[index...])
                await server.recordSharedStateError(error.operation)
                break
            }
        }
        if !failed.isEmpty { await server.requeueEnds(failed) }
        guard !records.isEmpty else { return }
        do throws(SharedStateError) {
            let result = try await state.sync(records, instance: identity.id, leaseTTL: leaseTTL)
            await server.applySync(result)
        } catch {
            await server.recordSharedStateError(error.operation)
        }
    }

    private func applyOrders() async {
        for await message in state.controlMessages() {
            await apply(message)
        }
    }

    private func publishEvents() async {
        for await line in events {
            do throws(SharedStateError) {
                try await state.publishEvent(line)
            } catch {
                await server.recordSharedStateError(error.operation)
            }
        }
    }

    // MARK: Orders and lists

    /// Applies one fleet order to this relay (idempotent: the sender applied it too).
    func apply(_ message: ControlMessage) async {
        switch message {
        case .revoke(let target, _):
            guard applied.withLock({ $0.revocations.insert(target).inserted }) else { return }
            await revokeHere(target)
        case .unrevoke(let target):
            guard applied.withLock({ $0.revocations.remove(target) != nil }) else { return }
            await liftHere(target)
        case .terminate(let id):
            _ = await server.terminate(id)
        case .block(let entry):
            guard applied.withLock({ $0.blocks.insert(entry.cidr).inserted }) else { return }
            _ = try? await server.block(entry.cidr)
        case .unblock(let cidr):
            guard applied.withLock({ $0.blocks.remove(cidr) != nil }) else { return }
            _ = await server.unblock(cidr)
        }
    }

    /// Brings this relay's revocations and API block entries in line with the shared lists.
    private func reconcileLists() async throws(SharedStateError) {
        let revocations = Set(try await state.revocations().map(\.target))
        let blocks = Set(try await state.blocks().map(\.cidr))
        let (revoke, lift, block, unblock) = applied.withLock { a in
            defer { a.revocations = revocations; a.blocks = blocks }
            return (revocations.subtracting(a.revocations), a.revocations.subtracting(revocations),
                    blocks.subtracting(a.blocks), a.blocks.subtracting(blocks))
        }
        for target in revoke { await revokeHere(target) }
        for target in lift { await liftHere(target) }
        for cidr in block { _ = try? await server.block(cidr) }
        for cidr in unblock { _ = await server.unblock(cidr) }
    }

    private func revokeHere(_ target: RevocationList.Target) async {
        switch target {
        case .allocation(let id): await server.revoke(allocationID: id)
        case .signer(let key): await server.revoke(signer: key)
        }
    }

    private func liftHere(_ target: RevocationList.Target) async {
        switch target {
        case .allocation(let id): await server.unrevoke(allocationID: id)
        case .signer(let key): await server.unrevoke(signer: key)
        }
    }

    /// Marks a change this instance made itself as applied (the API applied it already).
    func noteApplied(revocation target: RevocationList.Target? = nil, lifted: RevocationList.Target? = nil,
                     block: String? = nil, unblock: String? = nil) {
        applied.withLock { a in
            if let target { a.revocations.insert(target) }
            if let lifted { a.revocations.remove(lifted) }
            if let block { a.blocks.insert(block) }
            if let unblock { a.blocks.remove(unblock) }
        }
    }

    // MARK: Drain

    /// The drain's hand-over (DESIGN §7, §8): flush, release the leases, announce draining,
    /// and name the least-loaded live instance of this region as `alt` (empty when none).
    func handOver() async -> String {
        draining.store(true, ordering: .relaxed)
        let records = await server.fleetHandOver()
        do throws(SharedStateError) {
            if !records.isEmpty {
                _ = try await state.sync(records, instance: identity.id, leaseTTL: leaseTTL)
                try await state.release(records.map(\.id), instance: identity.id)
            }
            var instance = identity
            instance.draining = true
            instance.allocations = records.count
            try await state.heartbeat(instance, ttl: heartbeatTTL)
            let live = try await state.instances()
            let alternate = FleetInstance.leastLoaded(live, region: identity.region, excluding: identity.id)
            logger.info("drain: leases released", metadata: [
                "allocations": "\(records.count)", "alt": "\(alternate?.publicAddress ?? "none")",
            ])
            return alternate?.publicAddress ?? ""
        } catch {
            await server.recordSharedStateError(error.operation)
            logger.warning("drain: shared state unreachable; allocations will be taken over when their leases lapse",
                           metadata: ["error": "\(error.reason)"])
            return ""
        }
    }
}
