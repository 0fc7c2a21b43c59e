#if canImport(Glibc)
import Glibc
#endif
import RelayCore
import Synchronization

/// The embedded default (no Redis): shared state kept in this process. With one relay it is
/// never asked to claim (`isShared` is false); several relays in one process (tests) may share
/// one instance by passing `isShared: true`, and then it behaves like the Redis store,
/// leases and heartbeats included, on an injectable clock.
public final class InMemorySharedState: SharedState {
    public let isShared: Bool
    private let clock: @Sendable () -> UInt64  // milliseconds

    private struct Lease {
        var owner: String
        var expiresAtMs: UInt64
    }

    private struct Store {
        var records: [AllocationID: SharedAllocation] = [:]
        var leases: [AllocationID: Lease] = [:]
        var ended: [AllocationID: UInt64] = [:]
        var instances: [String: (instance: FleetInstance, expiresAtMs: UInt64)] = [:]
        var revocations = RevocationList()
        var blocks: [String: SharedBlockEntry] = [:]
        var subscribers: [Int: AsyncStream<ControlMessage>.Continuation] = [:]
        var nextSubscriber = 0
    }

    private let store = Mutex(Store())

    /// - Parameter clockMilliseconds: Unix milliseconds (tests pass a fake clock).
    public init(isShared: Bool = false, clockMilliseconds: @escaping @Sendable () -> UInt64 = InMemorySharedState.unixMilliseconds) {
        self.isShared = isShared
        self.clock = clockMilliseconds
    }

    /// The wall clock in Unix milliseconds.
    public static func unixMilliseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(max(0, ts.tv_sec)) * 1000 + UInt64(max(0, ts.tv_nsec)) / 1_000_000
    }

    private func isLive(_ instance: String, _ s: Store, now: UInt64) -> Bool {
        s.instances[instance].map { $0.expiresAtMs > now } ?? false
    }

    public func claim(_ request: ClaimRequest) async throws(SharedStateError) -> ClaimOutcome {
        let now = clock()
        return store.withLock { s in
            let record = request.record
            if let until = s.ended[record.id], until * 1000 > now { return .ended }
            let ttl = UInt64(request.leaseTTL / .milliseconds(1))
            if let existing = s.records[record.id] {
                guard existing.matches(signer: record.signer, peerA: record.peerA, peerB: record.peerB) else { return .mismatch }
                if let lease = s.leases[record.id], lease.expiresAtMs > now, lease.owner != record.owner,
                   let owner = s.instances[lease.owner], owner.expiresAtMs > now {
                    return .ownedElsewhere(owner: lease.owner, address: owner.instance.publicAddress)
                }
                guard request.hasRoom else { return .noRoom }
                s.leases[record.id] = Lease(owner: record.owner, expiresAtMs: now + ttl)
                var taken = existing
                taken.owner = record.owner
                s.records[record.id] = taken
                return .takenOver(existing)
            }
            guard request.hasRoom else { return .noRoom }
            s.records[record.id] = record
            s.leases[record.id] = Lease(owner: record.owner, expiresAtMs: now + ttl)
            return .created
        }
    }

    public func sync(_ records: [SharedAllocation], instance: String, leaseTTL: Duration) async throws(SharedStateError) -> SyncResult {
        let now = clock()
        let ttl = UInt64(leaseTTL / .milliseconds(1))
        return store.withLock { s in
            var result = SyncResult()
            for record in records {
                if s.ended[record.id] != nil {
                    result.endedElsewhere.append(record.id)
                    continue
                }
                if let lease = s.leases[record.id], lease.owner != instance, lease.expiresAtMs > now {
                    result.lost[record.id] = s.instances[lease.owner]?.instance.publicAddress ?? ""
                    continue
                }
                s.leases[record.id] = Lease(owner: instance, expiresAtMs: now + ttl)
                s.records[record.id] = record
            }
            return result
        }
    }

    public func end(_ id: AllocationID, until: UInt64) async throws(SharedStateError) {
        store.withLock { s in
            s.ended[id] = max(until, s.ended[id] ?? 0)
            s.records[id] = nil
            s.leases[id] = nil
        }
    }

    public func release(_ ids: [AllocationID], instance: String) async throws(SharedStateError) {
        store.withLock { s in
            for id in ids where s.leases[id]?.owner == instance { s.leases[id] = nil }
        }
    }

    public func terminate(_ id: AllocationID, until: UInt64) async throws(SharedStateError) -> Bool {
        store.withLock { s in
            let existed = s.records.removeValue(forKey: id) != nil
            s.leases[id] = nil
            if existed { s.ended[id] = max(until, s.ended[id] ?? 0) }
            return existed
        }
    }

    public func allocations() async throws(SharedStateError) -> [SharedAllocation] {
        store.withLock { $0.records.values.sorted { $0.id < $1.id } }
    }

    public func allocation(_ id: AllocationID) async throws(SharedStateError) -> SharedAllocation? {
        store.withLock { $0.records[id] }
    }

    public func heartbeat(_ instance: FleetInstance, ttl: Duration) async throws(SharedStateError) {
        let now = clock()
        var beat = instance
        beat.lastHeartbeat = now
        store.withLock { $0.instances[instance.id] = (beat, now + UInt64(ttl / .milliseconds(1))) }
    }

    public func instances() async throws(SharedStateError) -> [FleetInstance] {
        let now = clock()
        return store.withLock { s in s.instances.values.filter { $0.expiresAtMs > now }.map(\.instance).sorted { $0.id < $1.id } }
    }

    public func leave(instance: String) async throws(SharedStateError) {
        store.withLock { _ = $0.instances.removeValue(forKey: instance) }
    }

    public func addRevocation(_ entry: RevocationList.Entry) async throws(SharedStateError) {
        store.withLock { $0.revocations.add(entry.target, until: entry.until) }
    }

    public func removeRevocation(_ target: RevocationList.Target) async throws(SharedStateError) -> Bool {
        store.withLock { $0.revocations.remove(target) }
    }

    public func revocations() async throws(SharedStateError) -> [RevocationList.Entry] {
        let now = clock() / 1000
        return store.withLock { s in
            _ = s.revocations.removeExpired(nowUnix: now)
            return s.revocations.all
        }
    }

    public func addBlock(_ entry: SharedBlockEntry) async throws(SharedStateError) {
        store.withLock { $0.blocks[entry.cidr] = entry }
    }

    public func removeBlock(cidr: String) async throws(SharedStateError) -> Bool {
        store.withLock { $0.blocks.removeValue(forKey: cidr) != nil }
    }

    public func blocks() async throws(SharedStateError) -> [SharedBlockEntry] {
        let now = clock() / 1000
        return store.withLock { s in
            s.blocks = s.blocks.filter { ($0.value.expiresAt ?? .max) > now }
            return s.blocks.values.sorted { $0.cidr < $1.cidr }
        }
    }

    public func publish(_ message: ControlMessage) async throws(SharedStateError) {
        let subscribers = store.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(message) }
    }

    public func controlMessages() -> AsyncStream<ControlMessage> {
        let (stream, continuation) = AsyncStream.makeStream(of: ControlMessage.self, bufferingPolicy: .bufferingNewest(1024))
        let key = store.withLock { s in
            defer { s.nextSubscriber += 1 }
            s.subscribers[s.nextSubscriber] = continuation
            return s.nextSubscriber
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.store.withLock { $0.subscribers.removeValue(forKey: key) }
        }
        return stream
    }

    /// Nobody subscribes to events inside one process (the admin API's `/admin/events` serves them).
    public func publishEvent(_ line: String) async throws(SharedStateError) {}
}
