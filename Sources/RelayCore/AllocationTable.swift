/// Every allocation of the relay and the rules of DESIGN §5, as a state machine without I/O.
///
/// The shell calls one method per event (a verified ALLOCATE, a REFRESH, RELEASE, a closed
/// connection, a datagram, a timer tick, an admin action) with the current time, and carries
/// out the returned actions. One instance is used from one thread.
///
/// Allocation states, per allocation:
/// - **waiting**: one side bound, the other never arrived (pairing timeout runs);
/// - **paired**: both sides bound, datagrams flow;
/// - **peer gone**: paired before, one side is away (idle timeout runs for it);
/// - **ended**: removed; its id is remembered until its token expires (`allocation_ended`).
public struct AllocationTable: Sendable {
    /// Limits and timeouts (`limits.*`, `tiers.*`).
    public struct Configuration: Sendable, Hashable {
        public var maxAllocations: Int
        public var maxAllocationsPerKey: Int
        public var tiers: [Tier: TierLimits]
        public var globalBandwidthBitsPerSecond: UInt64
        public var allocationTimeout: Duration
        public var pairingTimeout: Duration
        public var idleTimeout: Duration
        /// Minimum time between two STATUS throttled frames to one sender.
        public var statusInterval: Duration = .seconds(5)
        /// Minimum time between two `throttled` events of one allocation (log lines).
        public var throttleEventInterval: Duration = .seconds(1)

        public init(maxAllocations: Int = Defaults.maxAllocations, maxAllocationsPerKey: Int = Defaults.maxAllocationsPerKey,
                    tiers: [Tier: TierLimits] = Defaults.tiers, globalBandwidthBitsPerSecond: UInt64 = 0,
                    allocationTimeout: Duration = Defaults.allocationTimeout, pairingTimeout: Duration = Defaults.pairingTimeout,
                    idleTimeout: Duration = Defaults.idleTimeout) {
            self.maxAllocations = maxAllocations
            self.maxAllocationsPerKey = maxAllocationsPerKey
            self.tiers = tiers
            self.globalBandwidthBitsPerSecond = globalBandwidthBitsPerSecond
            self.allocationTimeout = allocationTimeout
            self.pairingTimeout = pairingTimeout
            self.idleTimeout = idleTimeout
        }
    }

    /// Where the relay is reached, for ALLOCATED.
    public struct Addressing: Sendable, Hashable {
        public var relayPort: UInt16
        public var relayAddress: String
        public var observedAddress: String

        public init(relayPort: UInt16, relayAddress: String, observedAddress: String) {
            self.relayPort = relayPort
            self.relayAddress = relayAddress
            self.observedAddress = observedAddress
        }
    }

    struct Side: Sendable {
        let peer: PeerID
        var connection: ConnectionHandle?
        /// When the current connection was bound.
        var boundAt: RelayInstant?
        var leftAt: RelayInstant?
        /// When this side last had a datagram forwarded.
        var lastForwardAt: RelayInstant?
        var bucket: TokenBucket
        var bytesSent: UInt64 = 0
        var droppedSinceStatus: UInt64 = 0
        var lastStatusAt: RelayInstant?
        var droppedSinceEvent: UInt64 = 0
        var lastThrottleEventAt: RelayInstant?
    }

    struct Allocation: Sendable {
        let id: AllocationID
        let signer: SignerKey
        let tier: Tier
        let bandwidth: UInt64
        let quota: UInt64
        let createdAt: RelayInstant
        let createdUnix: UInt64
        let latestEnd: UInt64  // created (Unix) + allocation_timeout
        var expiresAt: UInt64  // Unix seconds
        var tokenExpiresAt: UInt64
        var sides: [Side]  // [peer_a's side, peer_b's side]
        var forwarded: UInt64 = 0
        var quotaNoticeSent = false
        var pairedOnce = false

        var isPaired: Bool { sides[0].connection != nil && sides[1].connection != nil }

        var peerState: PeerState {
            if isPaired { return .paired }
            return pairedOnce ? .peerGone : .waiting
        }

        func side(of peer: PeerID) -> Int { sides[0].peer == peer ? 0 : 1 }
    }

    struct Binding: Sendable {
        let allocation: AllocationID
        let side: Int
    }

    public private(set) var configuration: Configuration
    private var allocations: [AllocationID: Allocation] = [:]
    private var bindings: [ConnectionHandle: Binding] = [:]
    private var perSigner: [SignerKey: Int] = [:]
    /// Ended ids, remembered until their token's expiry; at least 10 × `maxAllocations` of
    /// them (DESIGN §5 v3), the oldest forgotten first.
    private(set) var ended: EndedAllocations
    private var globalBucket: TokenBucket

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.globalBucket = TokenBucket(bitsPerSecond: configuration.globalBandwidthBitsPerSecond)
        self.ended = EndedAllocations(capacity: Self.endedCapacity(for: configuration))
    }

    /// 10 × `max_allocations` (at least 1024) ended ids.
    static func endedCapacity(for configuration: Configuration) -> Int {
        let (tenfold, overflow) = max(1, configuration.maxAllocations).multipliedReportingOverflow(by: 10)
        return overflow ? Int.max : max(1024, tenfold)
    }

    /// New limits for new allocations (SIGHUP). Live allocations keep theirs.
    public mutating func reconfigure(_ configuration: Configuration) {
        self.configuration = configuration
        ended.capacity = max(ended.capacity, Self.endedCapacity(for: configuration))
        globalBucket.setRate(configuration.globalBandwidthBitsPerSecond)
    }

    public var count: Int { allocations.count }
    public var boundConnectionCount: Int { bindings.count }

    /// Whether the connection has an allocation.
    public func isBound(_ connection: ConnectionHandle) -> Bool { bindings[connection] != nil }

    /// The allocation a connection belongs to.
    public func allocationID(of connection: ConnectionHandle) -> AllocationID? { bindings[connection]?.allocation }

    // MARK: ALLOCATE

    /// A client sent ALLOCATE with a token the verifier accepted. On refusal the actions are
    /// ERROR + close for this connection only.
    public mutating func allocate(
        connection: ConnectionHandle, peer: PeerID, token: RelayTokenV1, addressing: Addressing,
        now: RelayInstant, nowUnix: UInt64
    ) -> [AllocationAction] {
        if bindings[connection] != nil {
            return refuse(connection, .badMessage, "this connection already has an allocation")
        }
        guard token.allows(peer) else {
            return refuse(connection, .unknownPeer, "peer id is not named in the token")
        }
        if ended.contains(token.allocationID, nowUnix: nowUnix) {
            return refuse(connection, .allocationEnded, "allocation has ended")
        }
        var actions: [AllocationAction] = []
        if var allocation = allocations[token.allocationID] {
            guard allocation.signer == token.signer,
                  Set([allocation.sides[0].peer, allocation.sides[1].peer]) == Set([token.peerA, token.peerB])
            else { return refuse(connection, .allocationMismatch, "token does not match the existing allocation") }
            let index = allocation.side(of: peer)
            let other = 1 - index
            let wasGone = allocation.pairedOnce && allocation.sides[index].connection == nil
            if let old = allocation.sides[index].connection {
                // A newer connection for a bound peer id replaces the old one.
                bindings[old] = nil
                actions.append(.send(.goAway(.init(reason: .replaced)), to: old))
                actions.append(.close(old, code: .replaced))
            }
            allocation.sides[index].connection = connection
            allocation.sides[index].boundAt = now
            allocation.sides[index].leftAt = nil
            if token.expiresAt > allocation.tokenExpiresAt {
                allocation.tokenExpiresAt = token.expiresAt
                allocation.expiresAt = min(token.expiresAt, allocation.latestEnd)
            }
            bindings[connection] = Binding(allocation: allocation.id, side: index)
            actions.append(.send(.allocated(allocated(allocation, addressing)), to: connection))
            let firstPairing = !allocation.pairedOnce && allocation.isPaired
            if allocation.isPaired { allocation.pairedOnce = true }
            actions.append(.send(.peer(allocation.peerState), to: connection))
            if allocation.isPaired, let otherConnection = allocation.sides[other].connection, firstPairing || wasGone {
                actions.append(.send(.peer(.paired), to: otherConnection))
            }
            if firstPairing { actions.append(.event(.paired(allocation.id))) }
            allocations[allocation.id] = allocation
            return actions
        }
        guard allocations.count < configuration.maxAllocations else {
            return refuse(connection, .capacity, "relay is at max_allocations")
        }
        guard perSigner[token.signer, default: 0] < configuration.maxAllocationsPerKey else {
            return refuse(connection, .capacity, "signer is at max_allocations_per_key")
        }
        let terms = terms(for: token, nowUnix: nowUnix)
        let (bandwidth, quota, cap) = (terms.bandwidthBitsPerSecond, terms.quotaBytes, terms.latestEnd)
        var allocation = Allocation(
            id: token.allocationID, signer: token.signer, tier: token.tier, bandwidth: bandwidth, quota: quota,
            createdAt: now, createdUnix: nowUnix, latestEnd: cap, expiresAt: min(token.expiresAt, cap), tokenExpiresAt: token.expiresAt,
            sides: [Side(peer: token.peerA, bucket: TokenBucket(bitsPerSecond: bandwidth)),
                    Side(peer: token.peerB, bucket: TokenBucket(bitsPerSecond: bandwidth))])
        let index = allocation.side(of: peer)
        allocation.sides[index].connection = connection
        allocation.sides[index].boundAt = now
        if token.peerA == token.peerB {
            // Degenerate token naming one peer twice: both sides are that peer; it can never pair.
            allocation.sides[1 - index].leftAt = nil
        }
        allocations[allocation.id] = allocation
        bindings[connection] = Binding(allocation: allocation.id, side: index)
        perSigner[token.signer, default: 0] += 1
        actions.append(.event(.created(allocation.id, tier: token.tier, signer: token.signer)))
        actions.append(.send(.allocated(allocated(allocation, addressing)), to: connection))
        actions.append(.send(.peer(.waiting), to: connection))
        return actions
    }

    private func allocated(_ a: Allocation, _ addressing: Addressing) -> ControlFrame.Allocated {
        ControlFrame.Allocated(
            allocationID: a.id, expiresAt: a.expiresAt, bandwidthBitsPerSecond: a.bandwidth, quotaBytes: a.quota,
            relayPort: addressing.relayPort, relayAddress: addressing.relayAddress, observedAddress: addressing.observedAddress)
    }

    /// ERROR + close for a connection that has no allocation (a refused ALLOCATE, a bad token…).
    public func refuse(_ connection: ConnectionHandle, _ code: RelayErrorCode, _ reason: String) -> [AllocationAction] {
        [.send(.error(code: code, reason: reason), to: connection), .close(connection, code: code)]
    }

    // MARK: Several instances (DESIGN §8)

    /// An allocation another instance served, as the shared state last recorded it.
    public struct CarriedAllocation: Sendable, Hashable {
        public var id: AllocationID
        public var signer: SignerKey
        public var peerA: PeerID
        public var peerB: PeerID
        public var tier: Tier
        public var bandwidthBitsPerSecond: UInt64
        public var quotaBytes: UInt64
        public var usedBytes: UInt64
        public var bytesAToB: UInt64
        public var bytesBToA: UInt64
        public var createdAtUnix: UInt64
        public var expiresAt: UInt64
        public var tokenExpiresAt: UInt64
        public var latestEnd: UInt64
        /// Whether both peers were ever bound (then a lone returning peer hears `peer gone`).
        public var pairedBefore: Bool

        public init(id: AllocationID, signer: SignerKey, peerA: PeerID, peerB: PeerID, tier: Tier, bandwidthBitsPerSecond: UInt64,
                    quotaBytes: UInt64, usedBytes: UInt64, bytesAToB: UInt64, bytesBToA: UInt64, createdAtUnix: UInt64,
                    expiresAt: UInt64, tokenExpiresAt: UInt64, latestEnd: UInt64, pairedBefore: Bool) {
            self.id = id
            self.signer = signer
            self.peerA = peerA
            self.peerB = peerB
            self.tier = tier
            self.bandwidthBitsPerSecond = bandwidthBitsPerSecond
            self.quotaBytes = quotaBytes
            self.usedBytes = usedBytes
            self.bytesAToB = bytesAToB
            self.bytesBToA = bytesBToA
            self.createdAtUnix = createdAtUnix
            self.expiresAt = expiresAt
            self.tokenExpiresAt = tokenExpiresAt
            self.latestEnd = latestEnd
            self.pairedBefore = pairedBefore
        }
    }

    /// The caps and expiry a new allocation for `token` gets here (tier narrowing, allocation_timeout).
    public func terms(for token: RelayTokenV1, nowUnix: UInt64) -> CarriedAllocation {
        let limits = configuration.tiers[token.tier] ?? TierLimits(bandwidthBitsPerSecond: 0, quotaBytes: 0)
        let (latestEnd, overflow) = nowUnix.addingReportingOverflow(configuration.allocationTimeout.wholeSeconds)
        let cap = overflow ? UInt64.max : latestEnd
        return CarriedAllocation(
            id: token.allocationID, signer: token.signer, peerA: token.peerA, peerB: token.peerB, tier: token.tier,
            bandwidthBitsPerSecond: TierLimits.effective(token: token.bandwidthBitsPerSecond, tier: limits.bandwidthBitsPerSecond),
            quotaBytes: TierLimits.effective(token: token.quotaBytes, tier: limits.quotaBytes), usedBytes: 0, bytesAToB: 0,
            bytesBToA: 0, createdAtUnix: nowUnix, expiresAt: min(token.expiresAt, cap), tokenExpiresAt: token.expiresAt,
            latestEnd: cap, pairedBefore: false)
    }

    /// Whether one more allocation of `signer` fits (`max_allocations`, `max_allocations_per_key`).
    public func hasRoom(for signer: SignerKey) -> Bool {
        allocations.count < configuration.maxAllocations && perSigner[signer, default: 0] < configuration.maxAllocationsPerKey
    }

    /// Whether `id` is live here.
    public func contains(_ id: AllocationID) -> Bool { allocations[id] != nil }

    /// Takes over an allocation from another instance with its caps, expiry and usage; no side
    /// is bound yet (the ALLOCATE that caused it binds next). Both sides count as away since
    /// now, so `idle_timeout` ends it if nobody comes. No-op when it is already live here.
    public mutating func adopt(_ carried: CarriedAllocation, now: RelayInstant, nowUnix: UInt64) {
        guard allocations[carried.id] == nil else { return }
        let ageSeconds = nowUnix >= carried.createdAtUnix ? nowUnix - carried.createdAtUnix : 0
        let (ageNanoseconds, overflow) = ageSeconds.multipliedReportingOverflow(by: 1_000_000_000)
        let createdAt = RelayInstant(nanoseconds: overflow || ageNanoseconds > now.nanoseconds ? 0 : now.nanoseconds - ageNanoseconds)
        var sides = [Side(peer: carried.peerA, bucket: TokenBucket(bitsPerSecond: carried.bandwidthBitsPerSecond)),
                     Side(peer: carried.peerB, bucket: TokenBucket(bitsPerSecond: carried.bandwidthBitsPerSecond))]
        sides[0].bytesSent = carried.bytesAToB
        sides[1].bytesSent = carried.bytesBToA
        sides[0].leftAt = now
        sides[1].leftAt = now
        var allocation = Allocation(
            id: carried.id, signer: carried.signer, tier: carried.tier, bandwidth: carried.bandwidthBitsPerSecond,
            quota: carried.quotaBytes, createdAt: createdAt, createdUnix: carried.createdAtUnix, latestEnd: carried.latestEnd,
            expiresAt: carried.expiresAt, tokenExpiresAt: carried.tokenExpiresAt, sides: sides)
        allocation.forwarded = carried.usedBytes
        allocation.pairedOnce = carried.pairedBefore
        allocation.quotaNoticeSent = carried.quotaBytes > 0
            && carried.usedBytes.multipliedFullWidth(by: 10) >= carried.quotaBytes.multipliedFullWidth(by: 9)
        allocations[carried.id] = allocation
        perSigner[carried.signer, default: 0] += 1
    }

    /// Another instance owns `id` now: it is dropped here without being remembered as ended
    /// and without an `ended` event; each bound side gets `goAway` and a close with code 0.
    public mutating func forget(_ id: AllocationID, goAway: ControlFrame.GoAway) -> [AllocationAction] {
        guard let allocation = allocations.removeValue(forKey: id) else { return [] }
        var actions: [AllocationAction] = []
        for side in allocation.sides {
            guard let connection = side.connection else { continue }
            bindings[connection] = nil
            actions.append(.send(.goAway(goAway), to: connection))
            actions.append(.close(connection, code: .replaced))
        }
        if let n = perSigner[allocation.signer] { perSigner[allocation.signer] = n > 1 ? n - 1 : nil }
        return actions
    }

    /// Remembers `id` as ended until `until` (ended on another instance).
    public mutating func rememberEnded(_ id: AllocationID, until: UInt64) { ended.insert(id, until: until) }

    /// Until when an ended id is remembered.
    public func endedUntil(_ id: AllocationID) -> UInt64? { ended.expiry(of: id) }

    /// Live allocation ids.
    public var ids: [AllocationID] { Array(allocations.keys) }

    // MARK: REFRESH, RELEASE, connection loss

    /// REFRESH with a token the verifier accepted: extends expires_at, or ERROR (nothing else changes).
    public mutating func refresh(connection: ConnectionHandle, token: RelayTokenV1) -> [AllocationAction] {
        guard let binding = bindings[connection], var allocation = allocations[binding.allocation] else {
            return [.send(.error(code: .badMessage, reason: "REFRESH before ALLOCATE"), to: connection)]
        }
        guard token.allocationID == allocation.id, token.signer == allocation.signer else {
            return [.send(.error(code: .allocationMismatch, reason: "token is for another allocation or signer"), to: connection)]
        }
        allocation.tokenExpiresAt = max(allocation.tokenExpiresAt, token.expiresAt)
        allocation.expiresAt = max(allocation.expiresAt, min(token.expiresAt, allocation.latestEnd))
        allocations[allocation.id] = allocation
        return [.send(.refreshed(expiresAt: allocation.expiresAt), to: connection)]
    }

    /// RELEASE: ends the allocation for both sides (`released`).
    public mutating func release(connection: ConnectionHandle, now: RelayInstant) -> [AllocationAction] {
        guard let binding = bindings[connection] else {
            return [.send(.error(code: .badMessage, reason: "RELEASE before ALLOCATE"), to: connection)]
        }
        var actions: [AllocationAction] = []
        end(binding.allocation, outcome: .released, code: .released, reason: "released", now: now, into: &actions)
        return actions
    }

    /// The connection is gone (closed, timed out, replaced elsewhere). The other side hears
    /// PEER peer gone; the idle timer starts.
    public mutating func connectionClosed(_ connection: ConnectionHandle, now: RelayInstant) -> [AllocationAction] {
        guard let binding = bindings.removeValue(forKey: connection), var allocation = allocations[binding.allocation],
              allocation.sides[binding.side].connection == connection
        else { return [] }
        let wasPaired = allocation.isPaired
        allocation.sides[binding.side].connection = nil
        allocation.sides[binding.side].leftAt = now
        allocations[allocation.id] = allocation
        if wasPaired, let other = allocation.sides[1 - binding.side].connection {
            return [.send(.peer(.peerGone), to: other)]
        }
        return []
    }

    // MARK: Datagrams

    /// Decides what happens to one datagram of `length` payload bytes from `connection`.
    /// Control actions it causes (QUOTA, STATUS, the end of an allocation at its quota) are
    /// appended to `actions`; the common forward case appends nothing and allocates nothing.
    public mutating func forwardDatagram(
        from connection: ConnectionHandle, length: Int, now: RelayInstant, actions: inout [AllocationAction]
    ) -> ForwardDecision {
        // Mutated in place through `values[index]`: the optional-key subscript's modify
        // accessor moves the allocation into a coroutine frame too large for the caller's
        // buffer, which cost a malloc per datagram (issue 18).
        guard let binding = bindings[connection], let index = allocations.index(forKey: binding.allocation) else {
            return .drop(.unpaired)
        }
        let (decision, quotaExceeded) = allocations.values[index].forward(
            from: binding.side, length: length, now: now, global: &globalBucket,
            configuration: configuration, actions: &actions)
        if quotaExceeded {
            end(binding.allocation, outcome: .quotaExceeded, code: .quotaExceeded, reason: "quota exceeded", now: now, into: &actions)
        }
        return decision
    }

    /// How long a datagram of `length` bytes from `connection` would have to wait for the
    /// bandwidth caps (its side's and the global one), in nanoseconds; 0 when it may go now
    /// or when the connection is not bound (then ``forwardDatagram`` decides). Charges nothing.
    public mutating func bandwidthDelay(from connection: ConnectionHandle, length: Int, now: RelayInstant) -> UInt64 {
        guard let binding = bindings[connection], let index = allocations.index(forKey: binding.allocation) else { return 0 }
        let own = allocations.values[index].sides[binding.side].bucket.nanosecondsUntilAvailable(length, now: now)
        return max(own, globalBucket.nanosecondsUntilAvailable(length, now: now))
    }

    // MARK: Time

    /// Ends allocations whose token expired or whose allocation_timeout, pairing_timeout or
    /// idle_timeout passed, and forgets ended ids whose token expired. Call every few hundred ms.
    public mutating func expire(now: RelayInstant, nowUnix: UInt64) -> [AllocationAction] {
        var actions: [AllocationAction] = []
        for (id, allocation) in allocations {
            if nowUnix >= allocation.expiresAt {
                end(id, outcome: .expired, code: .allocationExpired, reason: "allocation expired", now: now, into: &actions)
                continue
            }
            if !allocation.pairedOnce, now.since(allocation.createdAt) >= configuration.pairingTimeout {
                end(id, outcome: .peerTimeout, code: .peerTimeout, reason: "the other peer did not arrive", now: now, into: &actions)
                continue
            }
            let away = allocation.sides.contains { side in
                side.connection == nil && side.leftAt.map { now.since($0) >= configuration.idleTimeout } == true
            }
            if away {
                end(id, outcome: .peerTimeout, code: .peerTimeout, reason: "a peer did not come back", now: now, into: &actions)
            }
        }
        ended.forgetExpired(nowUnix: nowUnix)
        return actions
    }

    // MARK: Admin, revocation, shutdown

    /// Ends one allocation (`admin_terminated`). Empty if it does not exist.
    public mutating func terminate(_ id: AllocationID, now: RelayInstant) -> [AllocationAction] {
        var actions: [AllocationAction] = []
        end(id, outcome: .adminTerminated, code: .adminTerminated, reason: "terminated by an administrator", now: now, into: &actions)
        return actions
    }

    /// Ends the allocation at once (`revoked`).
    public mutating func revoke(allocationID id: AllocationID, now: RelayInstant) -> [AllocationAction] {
        var actions: [AllocationAction] = []
        end(id, outcome: .revoked, code: .revoked, reason: "revoked", now: now, into: &actions)
        return actions
    }

    /// Ends every allocation of this signer (`revoked`).
    public mutating func revoke(signer: SignerKey, now: RelayInstant) -> [AllocationAction] {
        var actions: [AllocationAction] = []
        for (id, allocation) in allocations where allocation.signer == signer {
            end(id, outcome: .revoked, code: .revoked, reason: "signer revoked", now: now, into: &actions)
        }
        return actions
    }

    /// Ends every allocation (`draining`), at the end of a graceful shutdown.
    public mutating func endAll(now: RelayInstant) -> [AllocationAction] {
        var actions: [AllocationAction] = []
        for id in Array(allocations.keys) {
            end(id, outcome: .draining, code: .draining, reason: "relay is shutting down", now: now, into: &actions)
        }
        return actions
    }

    /// Every connection that is bound to an allocation (for GOAWAY at shutdown).
    public var boundConnections: [ConnectionHandle] { Array(bindings.keys) }

    private mutating func end(_ id: AllocationID, outcome: AllocationOutcome, code: RelayErrorCode, reason: String,
                              now: RelayInstant, into actions: inout [AllocationAction]) {
        guard let allocation = allocations.removeValue(forKey: id) else { return }
        for side in allocation.sides {
            if let connection = side.connection {
                bindings[connection] = nil
                actions.append(.send(.error(code: code, reason: reason), to: connection))
                actions.append(.close(connection, code: code))
            }
        }
        if let n = perSigner[allocation.signer] {
            perSigner[allocation.signer] = n > 1 ? n - 1 : nil
        }
        ended.insert(id, until: allocation.tokenExpiresAt)
        let usage = allocation.quota > 0 ? Double(allocation.forwarded) / Double(allocation.quota) : nil
        actions.append(.event(.ended(id, outcome: outcome, bytesAToB: allocation.sides[0].bytesSent,
                                     bytesBToA: allocation.sides[1].bytesSent, duration: now.since(allocation.createdAt),
                                     quotaUsage: usage,
                                     signer: allocation.signer, tier: allocation.tier)))
    }

    // MARK: Views

    public func snapshot(now: RelayInstant) -> [AllocationSnapshot] {
        allocations.values.map { snapshot($0, now: now) }.sorted { $0.id < $1.id }
    }

    public func snapshot(of id: AllocationID, now: RelayInstant) -> AllocationSnapshot? {
        allocations[id].map { snapshot($0, now: now) }
    }

    private func snapshot(_ a: Allocation, now: RelayInstant) -> AllocationSnapshot {
        AllocationSnapshot(
            id: a.id, state: a.peerState, signer: a.signer, tier: a.tier,
            peerABound: a.sides[0].connection != nil, peerBBound: a.sides[1].connection != nil,
            bytesAToB: a.sides[0].bytesSent, bytesBToA: a.sides[1].bytesSent, quotaBytes: a.quota,
            bandwidthBitsPerSecond: a.bandwidth, expiresAt: a.expiresAt, age: now.since(a.createdAt),
            sides: a.sides.map { side in
                AllocationSnapshot.Side(peer: side.peer, connection: side.connection,
                                        boundFor: side.connection == nil ? nil : side.boundAt.map { now.since($0) })
            },
            createdAtUnix: a.createdUnix, tokenExpiresAt: a.tokenExpiresAt, latestEnd: a.latestEnd, usedBytes: a.forwarded,
            sinceLastActivity: now.since([a.createdAt, a.sides[0].lastForwardAt, a.sides[1].lastForwardAt,
                                          a.sides[0].boundAt, a.sides[1].boundAt].compactMap { $0 }.max() ?? a.createdAt))
    }

    /// Whether an id is remembered as ended.
    public func hasEnded(_ id: AllocationID) -> Bool { ended.remembers(id) }

    /// Ended ids forgotten early because their memory was full (`ended_ids_forgotten_total`).
    public var endedIDsForgotten: UInt64 { ended.forgottenCount }
}

extension AllocationTable.Allocation {
    /// The per-datagram rules: pairing, quota, the sender's bucket, the global bucket, the 90 %
    /// notice. Returns the decision and whether the quota is now exceeded (the caller ends it).
    mutating func forward(
        from index: Int, length: Int, now: RelayInstant, global: inout TokenBucket,
        configuration: AllocationTable.Configuration, actions: inout [AllocationAction]
    ) -> (ForwardDecision, Bool) {
        guard let target = sides[1 - index].connection else { return (.drop(.unpaired), false) }
        let size = UInt64(max(0, length))
        if quota > 0 {
            let (total, overflow) = forwarded.addingReportingOverflow(size)
            if overflow || total > quota { return (.drop(.quota), true) }
        }
        guard sides[index].bucket.canConsume(length, now: now) else {
            throttled(side: index, now: now, configuration: configuration, actions: &actions)
            return (.drop(.bandwidth), false)
        }
        guard global.canConsume(length, now: now) else { return (.drop(.globalBandwidth), false) }
        sides[index].bucket.consume(length)
        global.consume(length)
        forwarded &+= size
        sides[index].bytesSent &+= size
        sides[index].lastForwardAt = now
        if quota > 0, !quotaNoticeSent, forwarded.multipliedFullWidth(by: 10) >= quota.multipliedFullWidth(by: 9) {
            quotaNoticeSent = true
            for side in sides {
                if let c = side.connection { actions.append(.send(.quota(used: forwarded, quota: quota), to: c)) }
            }
        }
        return (.forward(to: target), false)
    }

    /// Counts a bandwidth drop; STATUS to the sender at most once per statusInterval, an event
    /// at most once per throttleEventInterval.
    mutating func throttled(side index: Int, now: RelayInstant, configuration: AllocationTable.Configuration,
                            actions: inout [AllocationAction]) {
        sides[index].droppedSinceStatus &+= 1
        sides[index].droppedSinceEvent &+= 1
        let side = sides[index]
        if let connection = side.connection,
           side.lastStatusAt.map({ now.since($0) >= configuration.statusInterval }) ?? true {
            actions.append(.send(.status(kind: .throttled, dropped: side.droppedSinceStatus), to: connection))
            sides[index].droppedSinceStatus = 0
            sides[index].lastStatusAt = now
        }
        if side.lastThrottleEventAt.map({ now.since($0) >= configuration.throttleEventInterval }) ?? true {
            actions.append(.event(.throttled(id, dropped: side.droppedSinceEvent)))
            sides[index].droppedSinceEvent = 0
            sides[index].lastThrottleEventAt = now
        }
    }
}
