import Foundation
import Logging
import RelayAdmin
import RelayConfig
import RelayCore
import RelayEngine
import ServiceLifecycle
import SharedState
import Synchronization

/// The admin API's view of this relay (DESIGN §7 v3): `AdminBackend` over the running
/// `RelayServer`, the revocation store, the API block list, the event hub and the settings.
final class RelayAdminAPI: AdminBackend {
    let server: RelayServer
    let revocations: RevocationStore
    let blocklistEntries = APIBlocklist()
    let events = EventHub()
    let instanceID: String
    let region: String
    /// With Redis: the fleet (shared lists, fleet-wide allocations, events channel).
    let fleet: FleetService?
    private let started = Date()
    private let token: Mutex<String?>
    private let current: CurrentConfiguration
    private let level: LogLevelBox
    private let logger: Logger

    init(server: RelayServer, revocations: RevocationStore, token: String?, current: CurrentConfiguration,
         level: LogLevelBox, instanceID: String, region: String, fleet: FleetService? = nil, logger: Logger) {
        self.fleet = fleet
        self.server = server
        self.revocations = revocations
        self.token = Mutex(token)
        self.current = current
        self.level = level
        self.instanceID = instanceID
        self.region = region
        self.logger = logger
    }

    /// SIGHUP: the token from `admin.token` or `admin.token_file` as it now reads.
    func replaceToken(_ new: String?) { token.withLock { $0 = new } }

    /// Applies the stored revocations to the relay (at start).
    func applyStoredRevocations() async {
        for entry in revocations.all {
            switch entry.target {
            case .allocation(let id): await server.revoke(allocationID: id)
            case .signer(let key): await server.revoke(signer: key)
            }
        }
    }

    /// Lapsed API block entries and revocations whose `until` passed (run every second).
    func sweep() async {
        let now = UInt64(Date().timeIntervalSince1970)
        for cidr in blocklistEntries.takeExpired(nowUnix: now) {
            _ = await server.unblock(cidr)
            logger.info("block-list entry expired", metadata: ["cidr": "\(cidr)"])
        }
        var expired: [RevocationList.Target] = []
        try? revocations.update { expired = $0.removeExpired(nowUnix: now) }
        for target in expired { await lift(target) }
    }

    // MARK: Events

    /// The relay's event sink: JSON only when someone listens.
    func publish(_ event: RelayEvent) {
        guard events.hasSubscribers || fleet != nil else { return }
        let line = Self.json(event, instance: instanceID, region: region)
        if events.hasSubscribers { events.publish(line) }
        fleet?.publish(event: line)
    }

    static func json(_ event: RelayEvent, instance: String, region: String) -> String {
        var fields: [String: any Sendable] = [:]
        switch event {
        case .allocationCreated(let id, let signer, let tier):
            fields["allocation_id"] = id.description
            fields["signer_key"] = signer.base64url
            fields["tier"] = "\(tier)"
        case .allocationPaired(let id):
            fields["allocation_id"] = id.description
        case .allocationEnded(let id, let signer, let tier, let outcome, let aToB, let bToA, let seconds):
            fields["allocation_id"] = id.description
            fields["signer_key"] = signer.base64url
            fields["tier"] = "\(tier)"
            fields["outcome"] = outcome.rawValue
            fields["bytes_a_to_b"] = aToB
            fields["bytes_b_to_a"] = bToA
            fields["duration_s"] = (seconds * 1000).rounded() / 1000
        case .tokenRefused(let code, let address):
            fields["code"] = code.name
            fields["addr"] = address
        case .rateLimited(let kind, let address):
            fields["kind"] = kind.rawValue
            fields["addr"] = address
        case .blocked(let address):
            fields["addr"] = address
        case .revoked(let target):
            fields["target"] = target
        }
        return eventLine(event.name, fields, instance: instance, region: region)
    }

    /// One event as DESIGN §7 writes it: `{"ts","event","instance","region",...}`.
    static func eventLine(_ name: String, _ fields: [String: any Sendable], instance: String, region: String) -> String {
        var object = fields
        object["ts"] = rfc3339Milliseconds(Date())
        object["event"] = name
        object["instance"] = instance
        object["region"] = region
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func rfc3339Milliseconds(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    // MARK: AdminBackend

    func currentToken() -> String? { token.withLock { $0 } }

    func chargeFailedAuthentication(address: [UInt8]) async -> Bool {
        await server.chargeFailedAdminAuthentication(from: address)
    }

    func isOverRate(address: [UInt8]) async -> Bool { await server.isOverConnectionRate(address) }

    /// This instance's allocations, and with Redis those the other instances serve (from
    /// their records: usage as last flushed, sides without transport or address).
    func allocations() async -> [AdminAllocation] {
        let now = Date().timeIntervalSince1970
        let local = await server.allocationViews().map { adminAllocation($0, now: now) }
        guard let fleet else { return local }
        let localIDs = Set(local.map(\.id))
        do throws(SharedStateError) {
            let remote = try await fleet.state.allocations().filter { !localIDs.contains($0.id.description) }
            return (local + remote.map(Self.adminAllocation)).sorted { $0.id < $1.id }
        } catch {
            logger.notice("fleet allocations unavailable; listing this instance's", metadata: ["error": "\(error.reason)"])
            return local
        }
    }

    func allocation(_ id: AllocationID) async -> AdminAllocation? {
        let now = Date().timeIntervalSince1970
        if let local = await server.allocationView(id) { return adminAllocation(local, now: now) }
        guard let fleet, let record = try? await fleet.state.allocation(id) else { return nil }
        return Self.adminAllocation(record)
    }

    static func adminAllocation(_ r: SharedAllocation) -> AdminAllocation {
        let state = r.state.adminName
        return AdminAllocation(
            id: r.id.description, state: state, tier: "\(r.tier)", signerKey: r.signer.base64url, createdAt: r.createdAt,
            expiresAt: r.expiresAt, bandwidthBitsPerSecond: r.bandwidthBitsPerSecond, quotaBytes: r.quotaBytes,
            bytesAToB: r.bytesAToB, bytesBToA: r.bytesBToA, lastActivity: r.lastActivity, owner: r.owner,
            sides: [r.peerA, r.peerB].map { AdminAllocation.Side(peerID: $0.description, transport: nil, observedAddress: nil, connectedSince: nil) })
    }

    private func adminAllocation(_ view: AllocationView, now: Double) -> AdminAllocation {
        let s = view.snapshot
        func unix(ago: Duration?) -> UInt64? {
            guard let ago else { return nil }
            let seconds = Double(ago.components.seconds) + Double(ago.components.attoseconds) / 1e18
            return UInt64(max(0, now - seconds))
        }
        let state = s.state.adminName
        let sides = zip(s.sides, view.connections).map { side, connection in
            AdminAllocation.Side(peerID: side.peer.description, transport: connection?.transport.rawValue,
                                 observedAddress: connection?.observedAddress, connectedSince: unix(ago: side.boundFor))
        }
        return AdminAllocation(
            id: s.id.description, state: state, tier: "\(s.tier)", signerKey: s.signer.base64url,
            createdAt: unix(ago: s.age) ?? 0, expiresAt: s.expiresAt, bandwidthBitsPerSecond: s.bandwidthBitsPerSecond,
            quotaBytes: s.quotaBytes, bytesAToB: s.bytesAToB, bytesBToA: s.bytesBToA,
            lastActivity: unix(ago: s.sinceLastActivity) ?? 0, owner: instanceID, sides: sides)
    }

    /// Ends an allocation wherever it is served: here at once; elsewhere the record is marked
    /// ended and the owner is told through the control channel (and finds it at its next sync).
    func terminate(_ id: AllocationID) async -> Bool {
        if await server.terminate(id) { return true }
        guard let fleet, let record = try? await fleet.state.allocation(id) else { return false }
        guard (try? await fleet.state.terminate(id, until: record.tokenExpiresAt)) == true else { return false }
        try? await fleet.state.publish(.terminate(id))
        return true
    }

    func stats() async -> AdminStats {
        let counters = await server.counters()
        let snapshots = await server.allocations()
        let draining = !(await server.isAcceptingAllocations())
        var byState = ["waiting": 0, "paired": 0, "peer_gone": 0]
        for snapshot in snapshots { byState[snapshot.state.adminName, default: 0] += 1 }
        func keyed<K>(_ values: [K: UInt64], _ name: (K) -> String) -> [String: UInt64] {
            Dictionary(values.map { (name($0.key), $0.value) }, uniquingKeysWith: +)
        }
        return AdminStats(
            instance: .init(id: instanceID, region: region, version: RelayVersion.current,
                            uptimeSeconds: UInt64(max(0, Date().timeIntervalSince(started))), draining: draining),
            allocations: byState,
            connections: Dictionary(counters.connections.map { ($0.key.rawValue, $0.value) }, uniquingKeysWith: +),
            bytesForwarded: keyed(counters.bytesForwarded) { $0.rawValue },
            packetsForwarded: keyed(counters.packetsForwarded) { $0.rawValue },
            packetsDropped: keyed(counters.packetsDropped) { $0.rawValue },
            allocationsEnded: keyed(counters.allocationsEnded) { $0.rawValue },
            rateLimitHits: keyed(counters.rateLimitHits) { $0.rawValue },
            tokenVerifications: keyed(counters.tokenVerifications) { $0.label },
            fleet: fleet.map { fleet in
                AdminStats.Fleet(instances: fleet.instances.map {
                    .init(id: $0.id, region: $0.region, publicAddress: $0.publicAddress, allocations: $0.allocations,
                          draining: $0.draining, lastHeartbeat: $0.lastHeartbeat / 1000)
                })
            })
    }

    func revoke(_ target: RevocationList.Target, until: UInt64?) async throws(AdminError) -> AdminRevocation {
        let settings = current.withLock { $0.settings }
        var expiry = until
        if expiry == nil, case .allocation(let id) = target, let seen = await server.tokenExpiry(of: id) {
            expiry = seen
        }
        let now = UInt64(Date().timeIntervalSince1970)
        let resolved = expiry ?? now + UInt64(settings.auth.maxTokenLifetime.components.seconds) + UInt64(settings.auth.clockSkew.components.seconds)
        if let fleet {
            do throws(SharedStateError) {
                try await fleet.state.addRevocation(.init(target: target, until: resolved))
                fleet.noteApplied(revocation: target)
                try await fleet.state.publish(.revoke(target, until: resolved))
            } catch {
                throw await unavailable(error)
            }
        } else {
            do {
                try revocations.update { $0.add(target, until: resolved) }
            } catch {
                throw AdminError(500, "storage", "\(error)")
            }
        }
        switch target {
        case .allocation(let id): await server.revoke(allocationID: id)
        case .signer(let key): await server.revoke(signer: key)
        }
        return AdminRevocation(RevocationList.Entry(target: target, until: resolved))
    }

    func revocations() async -> [AdminRevocation] {
        if let fleet, let shared = try? await fleet.state.revocations() { return shared.map(AdminRevocation.init) }
        return revocations.all.map(AdminRevocation.init)
    }

    /// 503 `unavailable`: the shared state did not answer (DESIGN §7); counted.
    func unavailable(_ error: SharedStateError) async -> AdminError {
        await server.recordSharedStateError(error.operation)
        return AdminError(503, "unavailable", "shared state unreachable: \(error.reason)")
    }

    func unrevoke(_ target: RevocationList.Target) async throws(AdminError) -> Bool {
        if let fleet {
            let existed: Bool
            do throws(SharedStateError) {
                existed = try await fleet.state.removeRevocation(target)
                fleet.noteApplied(lifted: target)
                if existed { try await fleet.state.publish(.unrevoke(target)) }
            } catch {
                throw await unavailable(error)
            }
            if existed { await lift(target) }
            return existed
        }
        var existed = false
        do {
            try revocations.update { existed = $0.remove(target) }
        } catch {
            throw AdminError(500, "storage", "\(error)")
        }
        if existed { await lift(target) }
        return existed
    }

    private func lift(_ target: RevocationList.Target) async {
        switch target {
        case .allocation(let id): await server.unrevoke(allocationID: id)
        case .signer(let key): await server.unrevoke(signer: key)
        }
    }

    func blocklist() async -> [AdminBlockEntry] {
        let configured = current.withLock { $0.configuration.blocklist.entries }
        if let fleet, let shared = try? await fleet.state.blocks() {
            return configured.map { AdminBlockEntry(cidr: $0, source: "config", reason: nil, expiresAt: nil) }
                + shared.map { AdminBlockEntry(cidr: $0.cidr, source: "api", reason: $0.reason, expiresAt: $0.expiresAt) }
        }
        return configured.map { AdminBlockEntry(cidr: $0, source: "config", reason: nil, expiresAt: nil) }
            + blocklistEntries.all.map { AdminBlockEntry(cidr: $0.cidr, source: "api", reason: $0.reason, expiresAt: $0.expiresAt) }
    }

    func block(cidr: String, ttlSeconds: UInt64?, reason: String?) async throws(AdminError) -> AdminBlockEntry {
        let ended: Int
        do {
            ended = try await server.block(cidr)
        } catch {
            throw AdminError(400, "bad_request", "cidr: \(error.description)")
        }
        let expiresAt = ttlSeconds.map { UInt64(Date().timeIntervalSince1970) + $0 }
        blocklistEntries.set(.init(cidr: cidr, reason: reason, expiresAt: expiresAt))
        if let fleet {
            let entry = SharedBlockEntry(cidr: cidr, reason: reason, expiresAt: expiresAt)
            do throws(SharedStateError) {
                try await fleet.state.addBlock(entry)
                fleet.noteApplied(block: cidr)
                try await fleet.state.publish(.block(entry))
            } catch {
                throw await unavailable(error)
            }
        }
        logger.notice("block-list entry added", metadata: ["cidr": "\(cidr)", "connections_ended": "\(ended)"])
        return AdminBlockEntry(cidr: cidr, source: "api", reason: reason, expiresAt: expiresAt)
    }

    func unblock(cidr: String) async -> Bool {
        if let fleet {
            let existed = (try? await fleet.state.removeBlock(cidr: cidr)) ?? false
            fleet.noteApplied(unblock: cidr)
            if existed { try? await fleet.state.publish(.unblock(cidr: cidr)) }
            blocklistEntries.remove(cidr)
            if existed { _ = await server.unblock(cidr) }
            return existed
        }
        guard blocklistEntries.remove(cidr) else { return false }
        _ = await server.unblock(cidr)
        return true
    }

    func effectiveConfiguration() -> [String: String?] {
        let loader = current.withLock { $0.loader }
        return loader.effectiveValues()
    }

    func setLogLevel(_ name: String) -> Bool {
        guard let newLevel = Logger.Level(rawValue: name) else { return false }
        level.value = newLevel
        return true
    }

    func subscribeEvents() -> AsyncStream<String> { events.subscribe() }

    func adminCallCompleted(method: String, path: String, status: Int, caller: String) {
        guard events.hasSubscribers || fleet != nil else { return }
        let line = Self.eventLine("admin", ["method": method, "path": path, "status": status, "caller": caller],
                                  instance: instanceID, region: region)
        if events.hasSubscribers { events.publish(line) }
        fleet?.publish(event: line)
    }
}

/// Runs the admin listener's housekeeping: lapsed block entries and revocations, every second.
struct AdminSweepService: Service {
    let api: RelayAdminAPI

    func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: .seconds(1))
            await api.sweep()
        }
        api.events.finishAll()
    }
}

/// The version reported by `/admin/stats`.
enum RelayVersion {
    static let current = "0.3.0"
}

extension PeerState {
    /// The admin API's name of an allocation state (`waiting`, `paired`, `peer_gone`).
    var adminName: String {
        switch self {
        case .waiting: return "waiting"
        case .paired: return "paired"
        case .peerGone: return "peer_gone"
        }
    }
}
