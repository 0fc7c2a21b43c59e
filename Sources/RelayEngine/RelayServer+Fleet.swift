import Logging
import QUICTransport
import RelayCore
import SharedState

/// How this relay takes part in a fleet (DESIGN §8).
public struct FleetMembership: Sendable {
    /// The shared state; with `isShared == false` (the embedded default) this instance owns
    /// every allocation and never asks.
    public var state: any SharedState
    public var instanceID: String
    /// How long a lease outlives its last renewal (3 heartbeat intervals).
    public var leaseTTL: Duration

    public init(state: any SharedState, instanceID: String, leaseTTL: Duration) {
        self.state = state
        self.instanceID = instanceID
        self.leaseTTL = leaseTTL
    }
}

/// An ALLOCATE waiting for the shared state's answer.
struct PendingAllocate {
    let handle: ConnectionHandle
    let peer: PeerID
    let token: RelayTokenV1
    let addressing: AllocationTable.Addressing
    let state: RelayServer.ConnectionState
}

extension RelayServer {
    /// The fleet when it is really shared (Redis, or a shared in-memory store in tests).
    var sharedFleet: FleetMembership? {
        guard let fleet, fleet.state.isShared else { return nil }
        return fleet
    }

    /// ALLOCATE for an id this instance does not serve: ask the shared state who does, then
    /// create, take over, redirect or refuse. Requests for one id wait for one claim.
    func claimThenAllocate(_ request: PendingAllocate, fleet: FleetMembership) {
        let id = request.token.allocationID
        if pendingClaims[id] != nil {
            pendingClaims[id, default: []].append(request)
            return
        }
        pendingClaims[id] = [request]
        let terms = table.terms(for: request.token, nowUnix: nowUnix)
        let record = SharedAllocation(terms, owner: fleet.instanceID)
        let claim = ClaimRequest(record: record, hasRoom: table.hasRoom(for: request.token.signer), leaseTTL: fleet.leaseTTL)
        let state = fleet.state
        Task { [self] in
            let outcome: Result<ClaimOutcome, SharedStateError>
            do throws(SharedStateError) {
                outcome = .success(try await state.claim(claim))
            } catch {
                outcome = .failure(error)
            }
            endpoint.execute { [self] in finishClaim(id, outcome) }
        }
    }

    private func finishClaim(_ id: AllocationID, _ outcome: Result<ClaimOutcome, SharedStateError>) {
        let waiting = pendingClaims.removeValue(forKey: id) ?? []
        if case .success(.takenOver(let record)) = outcome {
            table.adopt(record.carried, now: now, nowUnix: nowUnix)
            logger.info("allocation taken over", metadata: [
                "zrc.allocation.id": "\(id)", "previous_owner": "\(record.owner)", "used_bytes": "\(record.usedBytes)",
            ])
        }
        if case .failure(let error) = outcome {
            countSharedStateError(error.operation)
            logger.warning("shared state unreachable; ALLOCATE refused", metadata: ["zrc.allocation.id": "\(id)", "error": "\(error.reason)"])
        }
        for request in waiting where isOpen(request.handle) {
            if table.contains(id) {
                allocateLocally(request)
                continue
            }
            switch outcome {
            case .success(.created), .success(.takenOver):
                allocateLocally(request)
            case .success(.ownedElsewhere(_, let address)):
                request.state.logger.info("allocation served by another instance; redirected", metadata: ["alt": "\(address)"])
                send(.goAway(.init(reason: .redirect, reconnectInMilliseconds: 0, tryForMilliseconds: 5000, alternate: address)),
                     to: request.handle)
                close(request.handle, code: .replaced)
            case .success(.ended):
                table.rememberEnded(id, until: request.token.expiresAt)
                perform(table.refuse(request.handle, .allocationEnded, "allocation has ended"))
            case .success(.mismatch):
                perform(table.refuse(request.handle, .allocationMismatch, "token does not match the existing allocation"))
            case .success(.noRoom):
                perform(table.refuse(request.handle, .capacity, "relay is at max_allocations"))
            case .failure:
                perform(table.refuse(request.handle, .unavailable, "shared state unreachable; try another instance"))
            }
        }
    }

    /// The table's ALLOCATE for a request (the allocation is local now, or new).
    func allocateLocally(_ request: PendingAllocate) {
        let result = table.allocate(connection: request.handle, peer: request.peer, token: request.token,
                                    addressing: request.addressing, now: now, nowUnix: nowUnix)
        if table.isBound(request.handle) {
            request.state.logger[metadataKey: "zrc.allocation.id"] = "\(request.token.allocationID)"
        }
        perform(result)
    }

    private func isOpen(_ handle: ConnectionHandle) -> Bool {
        if links[handle.rawValue] != nil { return true }
        return endpoint.connection(withID: handle.rawValue)?.isEstablished == true
    }

    func countSharedStateError(_ operation: String) {
        counters.sharedStateErrors[operation, default: 0] += 1
    }

    /// An allocation ended here: tell the fleet (record, lease and ended id), unless it was
    /// handed over by a drain. A failed write is retried with the next sync.
    func reportEnded(_ id: AllocationID, outcome: AllocationOutcome) {
        guard let fleet = sharedFleet, !(outcome == .draining && fleetHandedOver) else { return }
        let until = table.endedUntil(id) ?? nowUnix
        let state = fleet.state
        Task { [self] in
            do throws(SharedStateError) {
                try await state.end(id, until: until)
            } catch {
                endpoint.execute { [self] in
                    countSharedStateError(error.operation)
                    if unreportedEnds.count < 100_000 { unreportedEnds.append((id, until)) }
                }
            }
        }
    }

    // MARK: Cross-thread API for the fleet service

    /// The records to write this round (none once handed over by a drain), and the endings
    /// still to report.
    public func fleetSyncBatch() async -> (records: [SharedAllocation], ends: [(AllocationID, UInt64)]) {
        await onLoop { server in
            let ends = server.unreportedEnds
            server.unreportedEnds.removeAll()
            guard let fleet = server.fleet, !server.fleetHandedOver else { return ([], ends) }
            return (server.sharedRecords(owner: fleet.instanceID), ends)
        }
    }

    /// Endings that could not be written go back in the queue.
    public func requeueEnds(_ ends: [(AllocationID, UInt64)]) async {
        await onLoop { server in
            server.unreportedEnds.append(contentsOf: ends.prefix(max(0, 100_000 - server.unreportedEnds.count)))
        }
    }

    /// Drain: the last records to flush and the ids whose leases to release; from now on the
    /// allocations are not renewed and their `draining` ends are not written.
    public func fleetHandOver() async -> [SharedAllocation] {
        await onLoop { server in
            server.fleetHandedOver = true
            guard let fleet = server.fleet else { return [] }
            return server.sharedRecords(owner: fleet.instanceID)
        }
    }

    /// What a sync found: allocations now owned elsewhere leave with GOAWAY redirect; ones
    /// ended elsewhere end here (`admin_terminated`).
    public func applySync(_ result: SyncResult) async {
        guard !result.lost.isEmpty || !result.endedElsewhere.isEmpty else { return }
        await onLoop { server in
            for (id, address) in result.lost {
                server.logger.warning("allocation now owned by another instance; clients redirected",
                                      metadata: ["zrc.allocation.id": "\(id)", "alt": "\(address)"])
                server.perform(server.table.forget(id, goAway: .init(reason: .redirect, tryForMilliseconds: 5000, alternate: address)))
            }
            for id in result.endedElsewhere {
                server.perform(server.table.terminate(id, now: server.now))
            }
        }
    }

    /// Live instances by region, for `fleet_instances`.
    public func recordFleet(instancesByRegion: [String: Int]) async {
        await onLoop { $0.counters.fleetInstances = instancesByRegion }
    }

    /// Counts a failed shared-state call made outside the loop.
    public func recordSharedStateError(_ operation: String) async {
        await onLoop { $0.countSharedStateError(operation) }
    }

    private func sharedRecords(owner: String) -> [SharedAllocation] {
        let unix = nowUnix
        return table.snapshot(now: now).map { s in
            let activity = UInt64(max(0, (s.sinceLastActivity / .seconds(1)).rounded(.down)))
            return SharedAllocation(
                id: s.id, owner: owner, signer: s.signer, peerA: s.sides.first?.peer ?? s.id, peerB: s.sides.last?.peer ?? s.id,
                tier: s.tier, bandwidthBitsPerSecond: s.bandwidthBitsPerSecond, quotaBytes: s.quotaBytes, usedBytes: s.usedBytes,
                bytesAToB: s.bytesAToB, bytesBToA: s.bytesBToA, createdAt: s.createdAtUnix, expiresAt: s.expiresAt,
                tokenExpiresAt: s.tokenExpiresAt, latestEnd: s.latestEnd, state: s.state,
                lastActivity: unix >= activity ? unix - activity : 0)
        }
    }
}

extension SharedAllocation {
    /// A new record from the terms the table would give (owner: the claiming instance).
    init(_ terms: AllocationTable.CarriedAllocation, owner: String) {
        self.init(id: terms.id, owner: owner, signer: terms.signer, peerA: terms.peerA, peerB: terms.peerB, tier: terms.tier,
                  bandwidthBitsPerSecond: terms.bandwidthBitsPerSecond, quotaBytes: terms.quotaBytes, createdAt: terms.createdAtUnix,
                  expiresAt: terms.expiresAt, tokenExpiresAt: terms.tokenExpiresAt, latestEnd: terms.latestEnd,
                  state: .waiting, lastActivity: terms.createdAtUnix)
    }

    /// The table's form for a takeover.
    var carried: AllocationTable.CarriedAllocation {
        AllocationTable.CarriedAllocation(
            id: id, signer: signer, peerA: peerA, peerB: peerB, tier: tier, bandwidthBitsPerSecond: bandwidthBitsPerSecond,
            quotaBytes: quotaBytes, usedBytes: usedBytes, bytesAToB: bytesAToB, bytesBToA: bytesBToA, createdAtUnix: createdAt,
            expiresAt: expiresAt, tokenExpiresAt: tokenExpiresAt, latestEnd: latestEnd, pairedBefore: state != .waiting)
    }
}
