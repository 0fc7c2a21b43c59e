#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import QUICTransport
import RelayCore
import SharedState

/// The relay: carries out `AllocationTable` decisions on QUIC connections.
///
/// Everything here runs on the QUIC endpoint's loop thread (the delegate methods, the tick);
/// other threads reach it through `execute`-based async methods. A datagram is forwarded
/// inside `connection(_:didReceiveDatagram:)`: one table lookup, then `sendDatagram` on the
/// peer's connection, which is on the same thread.
public final class RelayServer: QUICEndpointDelegate, @unchecked Sendable {
    // @unchecked Sendable: mutable state is confined to `endpoint`'s loop thread; the public
    // async methods hop there with `endpoint.execute`.

    /// Per-connection state, kept in `QUICConnection.context`.
    final class ConnectionState {
        var parser = ControlFrameParser(direction: .fromClient)
        let remote: TransportAddress
        var logger: Logger

        init(remote: TransportAddress, logger: Logger) {
            self.remote = remote
            self.logger = logger
        }
    }

    public let endpoint: QUICEndpoint
    private(set) var configuration: RelayServerConfiguration
    var table: AllocationTable
    var verifier: TokenVerifier
    var allocationLimiter: IPRateLimiter
    var connectionLimiter: IPRateLimiter
    var counters = RelayCounters()
    /// Repeated refusal lines per source, at most one a second with a count (DESIGN §6).
    var refusalLogThrottle = LogThrottle<[UInt8]>()
    var actions: [AllocationAction] = []
    var draining = false
    let logger: Logger
    /// Fallback (TCP) clients by handle; see `RelayServer+Links.swift`.
    var links: [UInt64: LinkState] = [:]
    /// Block-list entries added through the admin API; a SIGHUP reload keeps them.
    var apiBlocklist = CIDRSet()
    /// Receives events on the loop thread (set before `start()`); must not block.
    public var eventSink: (@Sendable (RelayEvent) -> Void)?
    var nextLinkID: UInt64 = 0
    /// Connections that must allocate in time (`allocateTimeout`).
    var allocateDeadlines: AllocateDeadlines
    /// The fleet this relay belongs to (set before `start()`); `nil`: alone, in memory.
    public var fleet: FleetMembership?
    /// ALLOCATEs waiting for the shared state, by allocation id (see `RelayServer+Fleet.swift`).
    var pendingClaims: [AllocationID: [PendingAllocate]] = [:]
    /// Endings the shared state has not confirmed yet (retried with each sync).
    var unreportedEnds: [(AllocationID, UInt64)] = []
    /// Set by a drain once the leases are released: nothing is renewed or ended in the fleet.
    var fleetHandedOver = false

    /// Binds the QUIC socket; `start()` begins serving.
    public init(quic: QUICConfiguration, bindAddress: TransportAddress, configuration: RelayServerConfiguration, logger: Logger) throws {
        var quic = quic
        quic.tickInterval = configuration.tickInterval
        quic.maxDatagramPayload = configuration.maxDatagramPayload
        self.configuration = configuration
        self.table = AllocationTable(configuration: configuration.allocations)
        self.verifier = TokenVerifier(configuration: configuration.tokens)
        self.allocationLimiter = IPRateLimiter(limit: configuration.allocationRatePerIP.limit, window: configuration.allocationRatePerIP.window)
        self.connectionLimiter = IPRateLimiter(limit: configuration.connectionRatePerIP.limit, window: configuration.connectionRatePerIP.window)
        self.logger = logger
        self.allocateDeadlines = AllocateDeadlines(grace: configuration.allocateTimeout)
        self.endpoint = try QUICEndpoint(role: .server, configuration: quic, bindAddress: bindAddress, logger: logger)
        actions.reserveCapacity(16)
        endpoint.delegate = self
    }

    public func start() throws {
        try endpoint.start()
    }

    /// Stops the loop (connections end without ceremony; use `drain` first for a graceful stop).
    public func stop() {
        endpoint.stop()
        endpoint.delegate = nil
    }

    // MARK: Cross-thread API

    /// Runs `body` on the loop thread and returns its result.
    func onLoop<T: Sendable>(_ body: @escaping @Sendable (RelayServer) -> T) async -> T {
        await withCheckedContinuation { continuation in
            endpoint.execute { [self] in continuation.resume(returning: body(self)) }
        }
    }

    /// A copy of the counters.
    public func counters() async -> RelayCounters {
        await onLoop { server in
            var c = server.counters.snapshot()
            c.activeAllocations = server.table.count
            c.endedIDsForgotten = server.table.endedIDsForgotten
            c.rateLimitHits[.accept, default: 0] += server.endpoint.counters.acceptLimited.load(ordering: .relaxed)
            return c
        }
    }

    /// Live allocations.
    public func allocations() async -> [AllocationSnapshot] {
        await onLoop { $0.table.snapshot(now: $0.now) }
    }

    /// Whether new allocations are accepted (false while draining).
    public func isAcceptingAllocations() async -> Bool {
        await onLoop { !$0.draining }
    }

    /// New limits, keys and lists (SIGHUP). Live allocations keep theirs.
    public func reconfigure(_ configuration: RelayServerConfiguration) async {
        await onLoop { server in
            server.configuration = configuration
            server.table.reconfigure(configuration.allocations)
            if server.verifier.configuration != configuration.tokens { server.verifier.reconfigure(configuration.tokens) }
            server.allocationLimiter.reconfigure(limit: configuration.allocationRatePerIP.limit, window: configuration.allocationRatePerIP.window)
            server.connectionLimiter.reconfigure(limit: configuration.connectionRatePerIP.limit, window: configuration.connectionRatePerIP.window)
        }
    }

    /// Admin: ends an allocation. Returns whether it existed.
    public func terminate(_ id: AllocationID) async -> Bool {
        await onLoop { server in
            let actions = server.table.terminate(id, now: server.now)
            server.perform(actions)
            return !actions.isEmpty
        }
    }

    /// Revokes an allocation id: live ones end at once, the token is refused afterwards.
    public func revoke(allocationID: AllocationID) async {
        await onLoop { server in
            server.verifier.revoke(allocationID: allocationID)
            server.eventSink?(.revoked(target: allocationID.description))
            server.perform(server.table.revoke(allocationID: allocationID, now: server.now))
        }
    }

    /// Revokes a signer key.
    public func revoke(signer: SignerKey) async {
        await onLoop { server in
            server.verifier.revoke(signer: signer)
            server.eventSink?(.revoked(target: signer.base64url))
            server.perform(server.table.revoke(signer: signer, now: server.now))
        }
    }

    /// Starts a graceful shutdown: new connections and allocations are refused, every bound
    /// client gets GOAWAY shutdown with `reconnect_in_ms` spread at random.
    public func beginDrain(alternate: String = "") async {
        await onLoop { server in
            server.draining = true
            let spread = UInt32(clamping: server.configuration.shutdownReconnectSpread.components.seconds * 1000)
            for handle in server.table.boundConnections {
                let goAway = ControlFrame.GoAway(
                    reason: .shutdown, reconnectInMilliseconds: spread == 0 ? 0 : UInt32.random(in: 0...spread),
                    tryForMilliseconds: 30_000, alternate: alternate)
                server.send(.goAway(goAway), to: handle)
            }
        }
    }

    /// Ends whatever is left (`draining`) at the end of the drain period.
    public func endRemaining() async {
        await onLoop { server in server.perform(server.table.endAll(now: server.now)) }
    }

    /// Live allocations, connections bound to them, and all QUIC connections.
    public func liveCounts() async -> (allocations: Int, boundConnections: Int, connections: Int) {
        await onLoop { ($0.table.count, $0.table.boundConnectionCount, $0.endpoint.connectionCount + $0.links.count) }
    }

    // MARK: Counting (loop thread)

    func recordAllocationAttempt(_ address: [UInt8]) -> IPRateLimiter.Decision { allocationLimiter.record(address, now: now) }
    func countRateLimit(_ kind: RelayCounters.RateLimitKind) { counters.rateLimitHits[kind, default: 0] += 1 }
    func verifyToken(_ bytes: [UInt8]) -> TokenVerification { verifier.verify(bytes, nowUnix: nowUnix) }
    func countTokenVerification(_ result: RelayCounters.TokenVerificationResult) { counters.tokenVerifications[result, default: 0] += 1 }
    func countError(_ code: RelayErrorCode) { counters.errors[code, default: 0] += 1 }
    func countCreated() { counters.allocationsCreated += 1 }

    func countEnded(_ outcome: AllocationOutcome, duration: Duration, usage: Double?) {
        counters.allocationsEnded[outcome, default: 0] += 1
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        counters.endedDurations.append(seconds)
        if let usage {
            counters.endedQuotaUsage.append(usage)
            counters.quotaUsageSamples += 1
        }
        // Histograms are drained by the exporter; keep memory bounded if nobody scrapes.
        if counters.endedDurations.count > 10_000 { counters.endedDurations.removeFirst(5_000) }
        if counters.endedQuotaUsage.count > 10_000 { counters.endedQuotaUsage.removeFirst(5_000) }
    }

    // MARK: Time

    var now: RelayInstant { RelayInstant(nanoseconds: endpoint.loopTime) }

    var nowUnix: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(max(0, ts.tv_sec))
    }

    // MARK: QUICEndpointDelegate

    public func endpoint(_ endpoint: QUICEndpoint, shouldAccept remote: TransportAddress) -> QUICAdmission {
        admit(remote)
    }

    /// Block and allow lists, draining, per-IP connection rate: the same for both transports.
    func admit(_ remote: TransportAddress) -> QUICAdmission {
        let address = remote.addressBytes
        if configuration.blocklist.contains(address) || apiBlocklist.contains(address) {
            counters.rateLimitHits[.blocked, default: 0] += 1
            eventSink?(.blocked(address: remote.hostString))
            logRefusal("connection from a blocked address refused", remote)
            return .drop
        }
        if !configuration.allowlist.isEmpty, !configuration.allowlist.contains(address) {
            counters.rateLimitHits[.blocked, default: 0] += 1
            return .drop
        }
        if draining { return .refuse }
        if connectionLimiter.record(address, now: now) == .limited {
            counters.rateLimitHits[.connection, default: 0] += 1
            eventSink?(.rateLimited(kind: .connection, address: remote.hostString))
            logRefusal("connection rate limit hit", remote)
            return .refuse
        }
        return .accept
    }

    /// Logs a refusal of `remote` unless one was logged for that source within the last
    /// second; the next line carries how many were not logged.
    func logRefusal(_ message: Logger.Message, _ remote: TransportAddress) {
        guard case .log(let suppressed) = refusalLogThrottle.record(IPRateLimiter.sourceKey(remote.addressBytes), now: now) else { return }
        var metadata: Logger.Metadata = ["zrc.peer.addr": "\(remote.hostString)"]
        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
        logger.notice(message, metadata: metadata)
    }

    public func connectionEstablished(_ connection: QUICConnection) {
        var connectionLogger = logger
        connectionLogger[metadataKey: "zrc.conn.id"] = "\(connection.id)"
        connectionLogger[metadataKey: "zrc.peer.addr"] = "\(connection.remoteAddress)"
        connection.context = ConnectionState(remote: connection.remoteAddress, logger: connectionLogger)
        counters.connections[.quic, default: 0] += 1
        allocateDeadlines.watch(ConnectionHandle(connection.id), now: now)
        connectionLogger.debug("connection established")
        guard connection.peerSupportsDatagrams else {
            send(.error(code: .badMessage, reason: "the QUIC DATAGRAM extension is required"), to: ConnectionHandle(connection.id))
            close(ConnectionHandle(connection.id), code: .badMessage)
            return
        }
    }

    public func connection(_ connection: QUICConnection, didReceiveDatagram payload: UnsafeRawBufferPointer) {
        forward(payload, from: ConnectionHandle(connection.id))
    }

    /// Forwards one datagram to the other side of its allocation (QUIC or fallback); it is
    /// counted under the transport it leaves on.
    @inline(__always)
    func forward(_ payload: UnsafeRawBufferPointer, from: ConnectionHandle) {
        guard payload.count <= configuration.maxDatagramPayload else {
            counters.dropped(.tooLarge)
            return
        }
        let decision = table.forwardDatagram(from: from, length: payload.count, now: now, actions: &actions)
        switch decision {
        case .forward(let to):
            if let target = endpoint.connection(withID: to.rawValue) {
                switch target.sendDatagram(payload) {
                case .success: counters.forwarded(bytes: payload.count, transport: .quic)
                case .failure(.tooLarge): counters.dropped(.tooLarge)
                case .failure(.queueFull): counters.dropped(.queueFull)
                case .failure(.notReady): counters.dropped(.unpaired)
                }
            } else if let state = links[to.rawValue] {
                if state.link.sendDatagram(payload) {
                    counters.forwarded(bytes: payload.count, transport: state.transport)
                } else {
                    counters.dropped(.queueFull)
                }
            } else {
                counters.dropped(.unpaired)
            }
        case .drop(let reason):
            counters.dropped(reason)
        }
        if !actions.isEmpty {
            let pending = actions
            actions.removeAll(keepingCapacity: true)
            perform(pending)
        }
    }

    public func connection(_ connection: QUICConnection, didReceiveControlData bytes: UnsafeRawBufferPointer, fin: Bool) {
        guard let state = connection.context as? ConnectionState else { return }
        let handle = ConnectionHandle(connection.id)
        do {
            try state.parser.append(bytes)
            while let frame = try state.parser.nextFrame() {
                self.handle(frame, handle: handle, state: state) {
                    AllocationTable.Addressing(
                        relayPort: self.configuration.relayPort,
                        relayAddress: self.relayAddress(for: connection),
                        observedAddress: connection.remoteAddress.description)
                }
                guard connection.isEstablished else { return }
            }
        } catch {
            state.logger.info("malformed control frame", metadata: ["zrc.error.code": "bad_message", "reason": "\(error.reason)"])
            send(.error(code: .badMessage, reason: error.reason), to: handle)
            close(handle, code: .badMessage)
        }
    }

    public func connection(_ connection: QUICConnection, didDropQueuedDatagrams count: Int, reason: DatagramDropReason) {
        switch reason {
        case .tooLarge: counters.dropped(.tooLarge, count: count)
        case .queueFull: counters.dropped(.queueFull, count: count)
        case .notReady: counters.dropped(.unpaired, count: count)
        }
    }

    public func connectionClosed(_ connection: QUICConnection, reason: QUICCloseReason) {
        if connection.context != nil { counters.connections[.quic, default: 0] -= 1 }
        (connection.context as? ConnectionState)?.logger.debug("connection closed", metadata: ["reason": "\(reason)"])
        connection.context = nil
        perform(table.connectionClosed(ConnectionHandle(connection.id), now: now))
    }

    public func endpointDidTick(_ endpoint: QUICEndpoint) {
        perform(table.expire(now: now, nowUnix: nowUnix))
        closeConnectionsWithoutAllocation()
    }

    /// Ends connections that have not allocated within `allocateTimeout`.
    private func closeConnectionsWithoutAllocation() {
        for handle in allocateDeadlines.expired(now: now) where !table.isBound(handle) {
            let state: ConnectionState?
            if let link = links[handle.rawValue] {
                state = link.connection
            } else if let connection = endpoint.connection(withID: handle.rawValue), connection.isEstablished {
                state = connection.context as? ConnectionState
            } else {
                continue
            }
            state?.logger.debug("no ALLOCATE in time; closed")
            send(.error(code: .badMessage, reason: "no ALLOCATE within \(configuration.allocateTimeout)"), to: handle)
            close(handle, code: .badMessage)
        }
    }
}
