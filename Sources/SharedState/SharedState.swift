import RelayCore

/// Why a shared-state call failed: the store could not be reached or answered nonsense.
/// The relay maps it to `unavailable` (21) for ALLOCATE and 503 for the admin API.
public struct SharedStateError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The operation (`shared_state_errors_total{op}`): claim, sync, heartbeat, end, …
    public var operation: String
    public var reason: String

    public init(_ operation: String, _ reason: String) {
        self.operation = operation
        self.reason = reason
    }

    public var description: String { "shared state \(operation): \(reason)" }
}

/// An instance asking to serve an allocation (an ALLOCATE for an id it does not hold).
public struct ClaimRequest: Sendable, Hashable {
    /// The record to create when the allocation is new (owner = the asking instance).
    public var record: SharedAllocation
    /// Whether the asking instance has room for one more allocation of this signer; without
    /// room it creates and takes over nothing.
    public var hasRoom: Bool
    public var leaseTTL: Duration

    public init(record: SharedAllocation, hasRoom: Bool, leaseTTL: Duration) {
        self.record = record
        self.hasRoom = hasRoom
        self.leaseTTL = leaseTTL
    }
}

/// The answer to a claim, decided atomically by the store.
public enum ClaimOutcome: Sendable, Hashable {
    /// The allocation was new; the record was written and the lease is the asker's.
    case created
    /// It existed without a live owner (dead, drained, or never leased): the lease is the
    /// asker's now; serve it with these caps, expiry and usage.
    case takenOver(SharedAllocation)
    /// A live instance owns it: send the client there (`host:port`).
    case ownedElsewhere(owner: String, address: String)
    /// The id is remembered as ended (fleet-wide).
    case ended
    /// It exists with another signer or peer pair.
    case mismatch
    /// The asker said it has no room.
    case noRoom
}

/// What `sync` found: allocations this instance no longer owns.
public struct SyncResult: Sendable, Hashable {
    /// Allocations whose lease another live instance holds now, with that owner's address.
    public var lost: [AllocationID: String] = [:]
    /// Allocations ended elsewhere (admin delete on another instance, revocation).
    public var endedElsewhere: [AllocationID] = []

    public init(lost: [AllocationID: String] = [:], endedElsewhere: [AllocationID] = []) {
        self.lost = lost
        self.endedElsewhere = endedElsewhere
    }
}

/// The state several instances share (DESIGN §8): allocation records and their leases,
/// instance heartbeats, ended ids, revocations, API block entries, and the control and
/// event channels. Two implementations: `InMemorySharedState` (one instance, the embedded
/// default) and `RedisSharedState`.
///
/// The datagram path never calls it: the relay counts usage locally and `sync`s it.
public protocol SharedState: Sendable {
    /// Whether other instances may share it. `false` for the embedded default: this instance
    /// owns every allocation and the relay does not ask before creating one.
    var isShared: Bool { get }

    /// Decides atomically who serves `request.record.id`.
    func claim(_ request: ClaimRequest) async throws(SharedStateError) -> ClaimOutcome
    /// Writes the owner's view of its allocations (usage, expiry, state) and renews their
    /// leases; reports the ones it lost or that were ended elsewhere.
    func sync(_ records: [SharedAllocation], instance: String, leaseTTL: Duration) async throws(SharedStateError) -> SyncResult
    /// An allocation ended on its owner: final usage, the ended id (until `until`), the record
    /// and the lease removed.
    func end(_ id: AllocationID, until: UInt64) async throws(SharedStateError)
    /// Drain: gives up the leases this instance holds for `ids` (records stay for the next owner).
    func release(_ ids: [AllocationID], instance: String) async throws(SharedStateError)
    /// Admin delete from any instance: marks the id ended and removes its record; whether it existed.
    func terminate(_ id: AllocationID, until: UInt64) async throws(SharedStateError) -> Bool
    /// Every allocation record of the fleet.
    func allocations() async throws(SharedStateError) -> [SharedAllocation]
    func allocation(_ id: AllocationID) async throws(SharedStateError) -> SharedAllocation?

    /// This instance's heartbeat (expires after `ttl` without the next one).
    func heartbeat(_ instance: FleetInstance, ttl: Duration) async throws(SharedStateError)
    /// Live instances (heartbeat present).
    func instances() async throws(SharedStateError) -> [FleetInstance]
    /// Removes this instance's heartbeat at exit.
    func leave(instance: String) async throws(SharedStateError)

    func addRevocation(_ entry: RevocationList.Entry) async throws(SharedStateError)
    func removeRevocation(_ target: RevocationList.Target) async throws(SharedStateError) -> Bool
    func revocations() async throws(SharedStateError) -> [RevocationList.Entry]

    func addBlock(_ entry: SharedBlockEntry) async throws(SharedStateError)
    func removeBlock(cidr: String) async throws(SharedStateError) -> Bool
    func blocks() async throws(SharedStateError) -> [SharedBlockEntry]

    /// Sends an order to every instance (this one included).
    func publish(_ message: ControlMessage) async throws(SharedStateError)
    /// Orders from every instance, for as long as the stream is consumed (it reconnects by itself).
    func controlMessages() -> AsyncStream<ControlMessage>
    /// One event line on `<prefix>events` (DESIGN §7).
    func publishEvent(_ line: String) async throws(SharedStateError)
}
