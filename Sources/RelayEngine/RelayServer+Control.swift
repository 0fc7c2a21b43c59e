import Logging
import QUICTransport
import RelayCore

extension RelayServer {
    /// One control frame from a client.
    /// - Parameter addressing: What ALLOCATED reports (computed only for ALLOCATE).
    func handle(_ frame: ControlFrame, handle: ConnectionHandle, state: ConnectionState,
                addressing: () -> AllocationTable.Addressing) {
        switch frame {
        case .allocate(let peer, let tokenBytes):
            if draining {
                refuse(handle, .draining, "relay is shutting down", state)
                return
            }
            if allocationLimiterRecord(state.remote) == .limited {
                refuse(handle, .rateLimited, "too many allocations from this address", state)
                return
            }
            switch verify(tokenBytes, state: state) {
            case .rejected(let code):
                refuse(handle, code, "token refused: \(code.name)", state)
            case .valid(let token):
                let request = PendingAllocate(handle: handle, peer: peer, token: token, addressing: addressing(), state: state)
                // Served here, or alone: the table decides. Otherwise the fleet decides who
                // serves it (after the checks that need no shared state: peer id, ended here).
                if let fleet = sharedFleet, !table.contains(token.allocationID), token.allows(peer), !table.hasEnded(token.allocationID),
                   !table.isBound(handle) {
                    claimThenAllocate(request, fleet: fleet)
                } else {
                    allocateLocally(request)
                }
            }
        case .refresh(let tokenBytes):
            switch verify(tokenBytes, state: state) {
            case .rejected(let code):
                send(.error(code: code, reason: "refresh refused: \(code.name)"), to: handle)
            case .valid(let token):
                perform(table.refresh(connection: handle, token: token))
            }
        case .release:
            perform(table.release(connection: handle, now: now))
        case .allocated, .peer, .quota, .refreshed, .goAway, .status, .error:
            // The parser only yields client frames; this is unreachable.
            refuse(handle, .badMessage, "unexpected frame", state)
        }
    }

    private func allocationLimiterRecord(_ remote: TransportAddress) -> IPRateLimiter.Decision {
        let decision = recordAllocationAttempt(remote.addressBytes)
        if decision == .limited {
            countRateLimit(.allocation)
            eventSink?(.rateLimited(kind: .allocation, address: remote.hostString))
        }
        return decision
    }

    private func verify(_ bytes: [UInt8], state: ConnectionState) -> TokenVerification {
        let result = verifyToken(bytes)
        switch result {
        case .valid:
            countTokenVerification(.ok)
        case .rejected(let code):
            countTokenVerification(.refused(code))
            eventSink?(.tokenRefused(code: code, address: state.remote.hostString))
            if case .log(let suppressed) = refusalLogThrottle.record(IPRateLimiter.sourceKey(state.remote.addressBytes), now: now) {
                state.logger.notice("token refused", metadata: ["zrc.error.code": "\(code.name)", "suppressed": "\(suppressed)"])
            }
        }
        return result
    }

    private func refuse(_ handle: ConnectionHandle, _ code: RelayErrorCode, _ reason: String, _ state: ConnectionState) {
        // One line per source and second at most (with a count): a refused client retrying
        // in a loop must not flood the log.
        if case .log(let suppressed) = refusalLogThrottle.record(IPRateLimiter.sourceKey(state.remote.addressBytes), now: now) {
            state.logger.info("allocation refused", metadata: ["zrc.error.code": "\(code.name)", "suppressed": "\(suppressed)"])
        }
        perform(table.refuse(handle, code, reason))
    }

    /// `server.public_addr`, else the local IP address the client's packets arrived on (the
    /// bound address, or with a wildcard bind the destination the kernel reported for them
    /// with IP_PKTINFO / IPV6_PKTINFO) — never the TLS server name (DESIGN §2 v3).
    func relayAddress(for connection: QUICConnection) -> String {
        if let configured = configuration.publicAddress { return configured }
        if let local = connection.localAddress?.unmappingIPv4, !local.isWildcard { return local.hostString }
        // The kernel did not report a destination: the address it routes the client through.
        let route = TransportAddress.localAddress(toward: connection.remoteAddress)?.unmappingIPv4
        return (route ?? endpoint.localAddress).hostString
    }

    // MARK: Carrying out actions

    func perform(_ actions: [AllocationAction]) {
        for action in actions {
            switch action {
            case .send(let frame, let to):
                send(frame, to: to)
            case .close(let handle, let code):
                close(handle, code: code)
            case .event(let event):
                record(event)
            }
        }
    }

    func send(_ frame: ControlFrame, to handle: ConnectionHandle) {
        if case .error(let code, _) = frame { countError(code) }
        if let link = links[handle.rawValue]?.link {
            link.sendControl(ControlFrameSerializer.encode(frame))
        } else {
            endpoint.connection(withID: handle.rawValue)?.writeControl(ControlFrameSerializer.encode(frame))
        }
    }

    func close(_ handle: ConnectionHandle, code: RelayErrorCode) {
        if let link = links[handle.rawValue]?.link {
            link.close(code: code)
        } else {
            endpoint.connection(withID: handle.rawValue)?.close(errorCode: UInt64(code.rawValue), reason: code.name)
        }
    }

    private func record(_ event: AllocationEvent) {
        switch event {
        case .created(let id, let tier, let signer):
            countCreated()
            eventSink?(.allocationCreated(id, signer: signer, tier: tier))
            logger.info("allocation created", metadata: [
                "zrc.allocation.id": "\(id)", "tier": "\(tier)", "signer_key": "\(signer.base64url)",
            ])
        case .paired(let id):
            eventSink?(.allocationPaired(id))
            logger.info("allocation paired", metadata: ["zrc.allocation.id": "\(id)"])
        case .ended(let id, let outcome, let aToB, let bToA, let duration, let usage, let signer, let tier):
            countEnded(outcome, duration: duration, usage: usage)
            reportEnded(id, outcome: outcome)
            let seconds = duration / .seconds(1)
            eventSink?(.allocationEnded(id, signer: signer, tier: tier, outcome: outcome,
                                        bytesAToB: aToB, bytesBToA: bToA, durationSeconds: seconds))
            logger.info("allocation ended", metadata: [
                "zrc.allocation.id": "\(id)", "outcome": "\(outcome.rawValue)", "bytes_a_to_b": "\(aToB)",
                "bytes_b_to_a": "\(bToA)", "duration_s": "\(seconds)",
                "signer_key": "\(signer.base64url)", "tier": "\(tier)",
            ])
        case .throttled(let id, let dropped):
            logger.info("bandwidth cap dropping datagrams", metadata: ["zrc.allocation.id": "\(id)", "dropped": "\(dropped)"])
        }
    }
}
