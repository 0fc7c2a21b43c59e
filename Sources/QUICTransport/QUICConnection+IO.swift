#if canImport(Glibc)
import Glibc
#endif
internal import CNGTCP2

extension QUICConnection {
    // MARK: Set-up

    /// Common settings and transport parameters for both roles.
    static func makeSettings(_ configuration: QUICConfiguration, now: UInt64) -> (ngtcp2_settings, ngtcp2_transport_params) {
        var settings = ngtcp2_settings()
        ngtcp2_settings_default_versioned(NGTCP2_SETTINGS_VERSION, &settings)
        settings.initial_ts = now
        settings.handshake_timeout = configuration.handshakeTimeout.nanosecondsClamped
        // 1452 (ngtcp2's PMTUD ceiling): the send buffers are this large so probes fit.
        settings.max_tx_udp_payload_size = 1452
        settings.ack_thresh = configuration.ackPolicy.threshold
        var params = ngtcp2_transport_params()
        ngtcp2_transport_params_default_versioned(NGTCP2_TRANSPORT_PARAMS_VERSION, &params)
        params.max_idle_timeout = configuration.maxIdleTimeout.nanosecondsClamped
        params.max_datagram_frame_size = UInt64(max(0, configuration.maxDatagramFrameSize))
        let window = UInt64(max(4096, configuration.streamWindow))
        params.initial_max_stream_data_bidi_local = window
        params.initial_max_stream_data_bidi_remote = window
        params.initial_max_stream_data_uni = 0
        params.initial_max_data = window * 4
        params.initial_max_streams_uni = 0
        params.active_connection_id_limit = 4
        return (settings, params)
    }

    /// Server side: accepts the client's first Initial. `originalDCID` differs from the packet's
    /// DCID after a Retry.
    func startServer(
        header: UnsafePointer<ngtcp2_pkt_hd>, path: UnsafePointer<ngtcp2_path>,
        originalDCID: ngtcp2_cid?, retrySCID: ngtcp2_cid?, token: ngtcp2_vec?, now: UInt64,
        tls: TLSContext
    ) -> Bool {
        let configuration = endpoint.configuration
        var (settings, params) = Self.makeSettings(configuration, now: now)
        params.initial_max_streams_bidi = UInt64(max(1, configuration.maxBidirectionalStreams))
        if let token { settings.token = token }
        if let retrySCID, let originalDCID {
            params.original_dcid = originalDCID
            params.retry_scid = retrySCID
            params.retry_scid_present = 1
        } else {
            params.original_dcid = header.pointee.dcid
        }
        var scid = ngtcp2_cid()
        var scidBytes = [UInt8](repeating: 0, count: QUICEndpoint.connectionIDLength)
        gnutls_rnd(GNUTLS_RND_NONCE, &scidBytes, scidBytes.count)
        ngtcp2_cid_init(&scid, scidBytes, scidBytes.count)
        guard withUnsafeMutableBytes(of: &params.stateless_reset_token, { raw in
            guard let base = raw.baseAddress else { return false }
            return endpoint.makeResetToken(base.assumingMemoryBound(to: UInt8.self), for: &scid)
        }) else { return false }
        params.stateless_reset_token_present = 1

        var callbacks = Self.makeCallbacks(isServer: true)
        var dcid = header.pointee.scid
        var newConn: OpaquePointer?
        let rv = ngtcp2_conn_server_new_versioned(
            &newConn, &dcid, &scid, path, header.pointee.version,
            NGTCP2_CALLBACKS_VERSION, &callbacks, NGTCP2_SETTINGS_VERSION, &settings,
            NGTCP2_TRANSPORT_PARAMS_VERSION, &params, nil, Unmanaged.passUnretained(self).toOpaque())
        guard rv == 0, let newConn else { return false }
        conn = newConn
        guard let newSession = tls.makeSession(connRef: connRef, serverName: nil) else { return false }
        session = newSession
        ngtcp2_conn_set_tls_native_handle(newConn, UnsafeMutableRawPointer(newSession))
        if let keepAlive = configuration.keepAliveInterval {
            ngtcp2_conn_set_keep_alive_timeout(newConn, keepAlive.nanosecondsClamped)
        }
        endpoint.route(&scid, to: self)
        var original = header.pointee.dcid
        endpoint.route(&original, to: self)
        return true
    }

    /// Client side: creates the connection and its first flight goes out on the next flush.
    func startClient(path: UnsafePointer<ngtcp2_path>, serverName: String?, now: UInt64, tls: TLSContext) -> Bool {
        let configuration = endpoint.configuration
        var (settings, params) = Self.makeSettings(configuration, now: now)
        params.initial_max_streams_bidi = 0
        var dcid = ngtcp2_cid()
        var scid = ngtcp2_cid()
        var dcidBytes = [UInt8](repeating: 0, count: 16)
        var scidBytes = [UInt8](repeating: 0, count: QUICEndpoint.connectionIDLength)
        gnutls_rnd(GNUTLS_RND_NONCE, &dcidBytes, dcidBytes.count)
        gnutls_rnd(GNUTLS_RND_NONCE, &scidBytes, scidBytes.count)
        ngtcp2_cid_init(&dcid, dcidBytes, dcidBytes.count)
        ngtcp2_cid_init(&scid, scidBytes, scidBytes.count)
        var callbacks = Self.makeCallbacks(isServer: false)
        var newConn: OpaquePointer?
        let rv = ngtcp2_conn_client_new_versioned(
            &newConn, &dcid, &scid, path, UInt32(NGTCP2_PROTO_VER_V1),
            NGTCP2_CALLBACKS_VERSION, &callbacks, NGTCP2_SETTINGS_VERSION, &settings,
            NGTCP2_TRANSPORT_PARAMS_VERSION, &params, nil, Unmanaged.passUnretained(self).toOpaque())
        guard rv == 0, let newConn else { return false }
        conn = newConn
        guard let newSession = tls.makeSession(connRef: connRef, serverName: serverName) else { return false }
        session = newSession
        ngtcp2_conn_set_tls_native_handle(newConn, UnsafeMutableRawPointer(newSession))
        if let keepAlive = configuration.keepAliveInterval {
            ngtcp2_conn_set_keep_alive_timeout(newConn, keepAlive.nanosecondsClamped)
        }
        endpoint.route(&scid, to: self)
        return true
    }

    // MARK: Receiving

    /// Feeds one packet to ngtcp2.
    func receive(_ packet: UnsafePointer<UInt8>, length: Int, path: UnsafePointer<ngtcp2_path>, now: UInt64) {
        switch lifecycle.packetArrived() {
        case .read:
            break
        case .resendClose:
            if !closePacket.isEmpty { endpoint.sendRaw(closePacket, to: path.pointee.remote, from: path.pointee.local) }
            return
        case .ignore:
            return
        }
        guard let conn else { return }
        var info = ngtcp2_pkt_info()
        let datagramsBefore = datagramsReceived
        packetNeedsPromptWrite = false
        let rv = ngtcp2_conn_read_pkt_versioned(conn, path, NGTCP2_PKT_INFO_VERSION, &info, packet, length, now)
        if rv != 0 {
            handleFatal(rv, now: now)
            return
        }
        // Only datagrams arrived: nothing to answer but an ACK, which waits (see
        // nextDeadline) until `ackThreshold` packets are unacknowledged, as ngtcp2's
        // immediate-ACK rule would have it, so a fast sender's window still opens quickly.
        // A packet that brought nothing for us while nothing of ours waits or is in flight
        // (most often the peer's ACK) needs no write pass at all.
        let content: ConnectionLifecycle.PacketContent
        if packetNeedsPromptWrite {
            content = .other
        } else if datagramsReceived != datagramsBefore {
            content = .datagrams
        } else if datagrams.isEmpty && control.isSettled {
            content = .quiet
        } else {
            content = .other
        }
        switch lifecycle.packetRead(content, now: now) {
        case .flush: endpoint.scheduleFlush(self)
        case .holdAck, .waitForTimer: endpoint.rescheduleTimer(self)
        }
    }

    /// Reacts to an ngtcp2 error from reading, writing or a timer.
    func handleFatal(_ rv: Int32, now: UInt64) {
        guard let conn else { return }
        switch rv {
        case NGTCP2_ERR_DRAINING:
            var ccerr = ngtcp2_connection_close_error()
            ngtcp2_conn_get_connection_close_error(conn, &ccerr)
            let reason = ccerr.reason.map { String(decoding: UnsafeBufferPointer(start: $0, count: ccerr.reasonlen), as: UTF8.self) } ?? ""
            let isApp = ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION
            enterDraining(now: now)
            notifyClosed(.closedByPeer(errorCode: ccerr.error_code, isApplicationError: isApp, reason: reason))
        case NGTCP2_ERR_DROP_CONN, NGTCP2_ERR_RETRY:
            notifyClosed(.failed(String(cString: ngtcp2_strerror(rv))))
            endpoint.destroy(self)
        case NGTCP2_ERR_IDLE_CLOSE:
            notifyClosed(.idleTimeout)
            endpoint.destroy(self)
        case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
            notifyClosed(.handshakeTimeout)
            endpoint.destroy(self)
        default:
            var why = String(cString: ngtcp2_strerror(rv))
            if rv == NGTCP2_ERR_CRYPTO {
                why += " (TLS alert \(ngtcp2_conn_get_tls_alert(conn)))"
            }
            writeClose(transportLibraryError: rv, now: now)
            notifyClosed(.failed(why))
        }
    }

    // MARK: Sending

    /// Writes everything that may go out now (control data, queued datagrams, ACKs, probes)
    /// into the endpoint's send batch.
    func flush(now: UInt64) {
        guard conn != nil else { return }
        // Control frames written before close() (ERROR, GOAWAY) leave first, then
        // CONNECTION_CLOSE. If pacing or congestion holds them back, the close waits a little
        // (the lifecycle's linger) rather than lose them. A server whose client never opened
        // the control stream has nowhere to write them: it closes at once.
        switch lifecycle.beginFlush(controlPending: control.hasUnsent && (!isServer || controlStreamID >= 0)) {
        case .skip:
            return
        case .write:
            dropStaleDatagrams(now: now)
            writePackets(now: now, includeDatagrams: true)
        case .writeControlFirst:
            writePackets(now: now, includeDatagrams: false)
            if case .close(let request) = lifecycle.afterControlWrite(controlStillPending: control.hasUnsent, now: now) {
                writeApplicationClose(request, now: now)
            }
        case .close(let request):
            writeApplicationClose(request, now: now)
        }
    }

    private func writePackets(now: UInt64, includeDatagrams: Bool) {
        guard let conn else { return }
        let batch = endpoint.sendBatch
        let path = endpoint.writePath
        let maxPacket = ngtcp2_conn_get_max_tx_udp_payload_size(conn)
        var budget = 64
        controlStreamBlocked = false
        outer: while budget > 0 {
            if batch.isFull { endpoint.flushSendBatch() }
            let buffer = batch.nextBuffer
            var info = ngtcp2_pkt_info()
            var written: Int
            while true {
                if control.hasUnsent, !controlStreamBlocked, ensureControlStream() {
                    let next = control.nextUnsent
                    let fin = control.finRequested && next.isLast
                    var vec = ngtcp2_vec(base: next.pointer?.assumingMemoryBound(to: UInt8.self), len: next.length)
                    var accepted: ngtcp2_ssize = -1
                    let flags = UInt32(NGTCP2_WRITE_STREAM_FLAG_MORE) | (fin ? UInt32(NGTCP2_WRITE_STREAM_FLAG_FIN) : 0)
                    let n = ngtcp2_conn_writev_stream_versioned(
                        conn, &path.pointee.path, NGTCP2_PKT_INFO_VERSION, &info, buffer, Int(maxPacket),
                        &accepted, flags, controlStreamID, &vec, next.length > 0 ? 1 : 0, now)
                    if accepted >= 0 { control.markSent(Int(accepted), fin: fin && Int(accepted) == next.length) }
                    if n == NGTCP2_ERR_WRITE_MORE { continue }
                    if n == NGTCP2_ERR_STREAM_DATA_BLOCKED { controlStreamBlocked = true; continue }
                    if n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND {
                        control.removeAll()
                        control = StreamSendBuffer()
                        continue
                    }
                    written = n
                    break
                } else if includeDatagrams, let head = datagrams.first, lifecycle.phase == .established {
                    if Int(head.length) > maxDatagramPayloadSize {
                        dropHead(reason: .tooLarge)
                        continue
                    }
                    // An empty datagram is a DATAGRAM frame with no data vector: ngtcp2 0.12.1
                    // asserts that every vector it encodes is non-empty (DESIGN §4 v3: empty
                    // payloads are forwarded like any other).
                    var vec = ngtcp2_vec(base: endpoint.slabs.pointer(head.slot).assumingMemoryBound(to: UInt8.self), len: Int(head.length))
                    var accepted: Int32 = 0
                    // MORE only when something else could share the packet: a lone datagram
                    // (the common case with many allocations) is written in one call instead
                    // of a WRITE_MORE call plus a second call that closes the packet.
                    let more = datagrams.count > 1 || control.hasUnsent
                    let n = ngtcp2_conn_writev_datagram_versioned(
                        conn, &path.pointee.path, NGTCP2_PKT_INFO_VERSION, &info, buffer, Int(maxPacket),
                        &accepted, more ? UInt32(NGTCP2_WRITE_DATAGRAM_FLAG_MORE) : 0, 0, &vec, head.length > 0 ? 1 : 0, now)
                    if accepted != 0, let sent = datagrams.removeFirst() {
                        endpoint.slabs.release(sent.slot)
                        datagramsSent &+= 1
                    }
                    if n == NGTCP2_ERR_WRITE_MORE { continue }
                    if n == NGTCP2_ERR_INVALID_ARGUMENT { dropHead(reason: .tooLarge); continue }
                    if n == NGTCP2_ERR_INVALID_STATE { dropAll(reason: .notReady); continue }
                    written = n
                    break
                } else {
                    written = ngtcp2_conn_write_pkt_versioned(
                        conn, &path.pointee.path, NGTCP2_PKT_INFO_VERSION, &info, buffer, Int(maxPacket), now)
                    break
                }
            }
            if written < 0 {
                handleFatal(Int32(clamping: written), now: now)
                return
            }
            if written == 0 { break outer }
            guard let remote = path.pointee.path.remote.addr else { break outer }
            batch.commit(length: written, destination: remote, destinationLength: path.pointee.path.remote.addrlen,
                         source: path.pointee.path.local.addr, sourceLength: path.pointee.path.local.addrlen)
            budget -= 1
        }
        ngtcp2_conn_update_pkt_tx_time(conn, now)
        datagrams.shrinkIfIdle(now: now, idle: 1_000_000_000)
    }

    /// Client: opens the control stream on first use. Server: the client opened it.
    private func ensureControlStream() -> Bool {
        if controlStreamID >= 0 { return true }
        guard !isServer, let conn else { return false }
        var streamID: Int64 = -1
        guard ngtcp2_conn_open_bidi_stream(conn, &streamID, nil) == 0 else { return false }
        controlStreamID = streamID
        return true
    }

    private func dropHead(reason: DatagramDropReason) {
        if let entry = datagrams.removeFirst() { endpoint.slabs.release(entry.slot) }
        endpoint.delegate?.connection(self, didDropQueuedDatagrams: 1, reason: reason)
    }

    private func dropAll(reason: DatagramDropReason) {
        var dropped = 0
        while let entry = datagrams.removeFirst() {
            endpoint.slabs.release(entry.slot)
            dropped += 1
        }
        if dropped > 0 { endpoint.delegate?.connection(self, didDropQueuedDatagrams: dropped, reason: reason) }
    }

    private func dropStaleDatagrams(now: UInt64) {
        let maxAge = endpoint.datagramMaxAge
        var dropped = 0
        while let head = datagrams.first, now &- head.enqueuedAt > maxAge, now > head.enqueuedAt {
            _ = datagrams.removeFirst()
            endpoint.slabs.release(head.slot)
            dropped += 1
        }
        if dropped > 0 { endpoint.delegate?.connection(self, didDropQueuedDatagrams: dropped, reason: .queueFull) }
    }

    // MARK: Closing

    private func writeApplicationClose(_ pending: ConnectionLifecycle.RequestedClose, now: UInt64) {
        var ccerr = ngtcp2_connection_close_error()
        ngtcp2_connection_close_error_default(&ccerr)
        pending.reason.withUnsafeBufferPointer { reason in
            if pending.isApplication {
                ngtcp2_connection_close_error_set_application_error(&ccerr, pending.code, reason.baseAddress, reason.count)
            } else {
                ngtcp2_connection_close_error_set_transport_error(&ccerr, pending.code, reason.baseAddress, reason.count)
            }
            writeClose(&ccerr, now: now)
        }
        notifyClosed(.closedLocally(errorCode: pending.code, isApplicationError: pending.isApplication))
    }

    private func writeClose(transportLibraryError rv: Int32, now: UInt64) {
        var ccerr = ngtcp2_connection_close_error()
        ngtcp2_connection_close_error_default(&ccerr)
        if rv == NGTCP2_ERR_CRYPTO, let conn {
            ngtcp2_connection_close_error_set_transport_error_tls_alert(&ccerr, ngtcp2_conn_get_tls_alert(conn), nil, 0)
        } else {
            ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, rv, nil, 0)
        }
        writeClose(&ccerr, now: now)
    }

    /// Writes CONNECTION_CLOSE, keeps a copy to answer late packets, and enters the closing period.
    private func writeClose(_ ccerr: UnsafePointer<ngtcp2_connection_close_error>, now: UInt64) {
        guard let conn else { return }
        if ngtcp2_conn_is_in_closing_period(conn) != 0 || ngtcp2_conn_is_in_draining_period(conn) != 0 {
            enterDraining(now: now)
            return
        }
        let path = endpoint.writePath
        var info = ngtcp2_pkt_info()
        var buffer = [UInt8](repeating: 0, count: SendBatch.slotSize)
        let n = buffer.withUnsafeMutableBufferPointer { out in
            ngtcp2_conn_write_connection_close_versioned(
                conn, &path.pointee.path, NGTCP2_PKT_INFO_VERSION, &info, out.baseAddress, 1452, ccerr, now)
        }
        guard n > 0, let remote = path.pointee.path.remote.addr else {
            endpoint.destroy(self)
            return
        }
        closePacket = Array(buffer.prefix(n))
        endpoint.sendRaw(closePacket, to: ngtcp2_addr(addr: remote, addrlen: path.pointee.path.remote.addrlen),
                         from: path.pointee.path.local)
        lifecycle.closeSent(now: now, pto: ngtcp2_conn_get_pto(conn))
        dropAll(reason: .notReady)
        endpoint.scheduleTimer(self, deadline: nextDeadline)
    }

    private func enterDraining(now: UInt64) {
        lifecycle.peerClosed(now: now, pto: conn.map { ngtcp2_conn_get_pto($0) } ?? 1_000_000_000)
        dropAll(reason: .notReady)
        endpoint.scheduleTimer(self, deadline: nextDeadline)
    }

    // MARK: Timers

    /// The next time ngtcp2, the close linger, held ACKs or the closing period need attention.
    var nextDeadline: UInt64 {
        let expiry = conn.map { ngtcp2_conn_get_expiry($0) } ?? .max
        return lifecycle.nextDeadline(ngtcp2Expiry: expiry, nothingToSend: datagrams.isEmpty && !control.hasUnsent)
    }

    /// Called when the connection's timer fires.
    func handleTimer(now: UInt64) {
        let step = lifecycle.timerFired(now: now, ngtcp2Expiry: conn.map { ngtcp2_conn_get_expiry($0) } ?? .max)
        if step.destroy {
            endpoint.destroy(self)
            return
        }
        if step.flushForLinger { endpoint.scheduleFlush(self) }
        guard step.handleExpiry, let conn else { return }
        let rv = ngtcp2_conn_handle_expiry(conn, now)
        if rv != 0 {
            handleFatal(rv, now: now)
            return
        }
        endpoint.scheduleFlush(self)
    }
}
