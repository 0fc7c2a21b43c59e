import QUICTransport
import RelayCore

/// One allocation as the admin API shows it: the core's snapshot plus, for each connected
/// side, its transport and observed address.
public struct AllocationView: Sendable {
    public var snapshot: AllocationSnapshot
    /// For each side of `snapshot.sides` (same order): transport and observed address of
    /// its connection, `nil` when the side is not connected.
    public var connections: [(transport: RelayCounters.Transport, observedAddress: String)?]
}

extension RelayServer {
    /// Live allocations with their connections (admin API).
    public func allocationViews() async -> [AllocationView] {
        await onLoop { server in server.table.snapshot(now: server.now).map { server.view(of: $0) } }
    }

    /// One live allocation (admin API).
    public func allocationView(_ id: AllocationID) async -> AllocationView? {
        await onLoop { server in server.table.snapshot(of: id, now: server.now).map { server.view(of: $0) } }
    }

    /// Lifts a revocation of an allocation id: later tokens for it are accepted again.
    public func unrevoke(allocationID: AllocationID) async {
        await onLoop { server in server.verifier.unrevoke(allocationID: allocationID) }
    }

    /// Lifts a revocation of a signer key.
    public func unrevoke(signer: SignerKey) async {
        await onLoop { server in server.verifier.unrevoke(signer: signer) }
    }

    /// The latest token expiry the relay has seen for a live allocation id (for a revocation's
    /// default `until`), `nil` when none is live.
    public func tokenExpiry(of id: AllocationID) async -> UInt64? {
        await onLoop { server in server.table.snapshot(of: id, now: server.now)?.expiresAt }
    }

    /// Charges a failed admin authentication to the per-IP connection rate limit (DESIGN §7:
    /// wrong tokens count toward it). Returns whether that source is now over the limit.
    public func chargeFailedAdminAuthentication(from address: [UInt8]) async -> Bool {
        await onLoop { server in
            if case .limited = server.connectionLimiter.record(address, now: server.now) {
                server.countRateLimit(.connection)
                return true
            }
            return false
        }
    }

    /// Whether a source is currently over the per-IP connection rate limit (without charging).
    public func isOverConnectionRate(_ address: [UInt8]) async -> Bool {
        await onLoop { server in server.connectionLimiter.isOverLimit(address, now: server.now) }
    }

    /// Adds a block-list entry (admin API): new connections from it are dropped, live relay
    /// connections from it get ERROR `blocked` and a close. Returns how many were ended.
    public func block(_ cidr: String) async throws(CIDRError) -> Int {
        let result: Result<Int, CIDRError> = await onLoop { server in
            do throws(CIDRError) {
                var single = CIDRSet()
                try single.insert(cidr)
                try server.apiBlocklist.insert(cidr)
                var ended = 0
                for connection in server.endpoint.connections {
                    guard let state = connection.context as? ConnectionState, single.contains(state.remote.addressBytes) else { continue }
                    server.endBlocked(ConnectionHandle(connection.id))
                    ended += 1
                }
                for (handle, link) in server.links where single.contains(link.link.remoteAddress.addressBytes) {
                    server.endBlocked(ConnectionHandle(handle))
                    ended += 1
                }
                return .success(ended)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Removes a block-list entry added through the admin API; `false` when there was none.
    public func unblock(_ cidr: String) async -> Bool {
        await onLoop { server in server.apiBlocklist.remove(cidr) }
    }

    private func endBlocked(_ handle: ConnectionHandle) {
        countRateLimit(.blocked)
        send(.error(code: .blocked, reason: "blocked"), to: handle)
        close(handle, code: .blocked)
    }

    func view(of snapshot: AllocationSnapshot) -> AllocationView {
        AllocationView(snapshot: snapshot, connections: snapshot.sides.map { side in
            guard let handle = side.connection else { return nil }
            if let link = links[handle.rawValue] {
                return (link.transport, link.link.remoteAddress.unmappingIPv4.description)
            }
            if let connection = endpoint.connection(withID: handle.rawValue) {
                return (.quic, connection.remoteAddress.unmappingIPv4.description)
            }
            return nil
        })
    }
}
