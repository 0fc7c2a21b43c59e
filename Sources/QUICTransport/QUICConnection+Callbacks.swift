#if canImport(Glibc)
import Glibc
#endif
internal import CNGTCP2

/// ngtcp2 callbacks as non-capturing thunks. `user_data` is the unretained `QUICConnection`.
/// Thunks never throw; one that cannot find its connection returns
/// NGTCP2_ERR_CALLBACK_FAILURE, which the read or write that called it reports as a failure.
extension QUICConnection {
    @inline(__always)
    static func from(_ userData: UnsafeMutableRawPointer?) -> QUICConnection? {
        guard let userData else { return nil }
        return Unmanaged<QUICConnection>.fromOpaque(userData).takeUnretainedValue()
    }

    static func makeCallbacks(isServer: Bool) -> ngtcp2_callbacks {
        var cb = ngtcp2_callbacks()
        if isServer {
            cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb
        } else {
            cb.client_initial = ngtcp2_crypto_client_initial_cb
            cb.recv_retry = ngtcp2_crypto_recv_retry_cb
        }
        cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb
        cb.encrypt = ngtcp2_crypto_encrypt_cb
        cb.decrypt = ngtcp2_crypto_decrypt_cb
        cb.hp_mask = ngtcp2_crypto_hp_mask_cb
        cb.update_key = ngtcp2_crypto_update_key_cb
        cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb
        cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb
        cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb
        cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb
        cb.rand = { dest, length, _ in
            guard let dest else { return }
            gnutls_rnd(GNUTLS_RND_NONCE, dest, length)
        }
        cb.get_new_connection_id = { _, cid, token, cidLength, userData in
            guard let connection = QUICConnection.from(userData), let cid, let token else {
                return NGTCP2_ERR_CALLBACK_FAILURE
            }
            return connection.issueConnectionID(cid, resetToken: token, length: cidLength) ? 0 : NGTCP2_ERR_CALLBACK_FAILURE
        }
        cb.remove_connection_id = { _, cid, userData in
            guard let connection = QUICConnection.from(userData), let cid else { return 0 }
            connection.retireConnectionID(cid)
            return 0
        }
        cb.handshake_completed = { _, userData in
            guard let connection = QUICConnection.from(userData) else { return NGTCP2_ERR_CALLBACK_FAILURE }
            connection.didCompleteHandshake()
            return 0
        }
        cb.recv_datagram = { _, _, data, length, userData in
            guard let connection = QUICConnection.from(userData) else { return NGTCP2_ERR_CALLBACK_FAILURE }
            connection.datagramsReceived &+= 1
            guard connection.lifecycle.isOpen else { return 0 }
            connection.endpoint.delegate?.connection(connection, didReceiveDatagram: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        cb.recv_stream_data = { conn, flags, streamID, _, data, length, userData, _ in
            guard let connection = QUICConnection.from(userData), let conn else { return NGTCP2_ERR_CALLBACK_FAILURE }
            connection.packetNeedsPromptWrite = true
            // We consume everything at once, so give the credit straight back.
            ngtcp2_conn_extend_max_stream_offset(conn, streamID, UInt64(length))
            ngtcp2_conn_extend_max_offset(conn, UInt64(length))
            connection.didReceiveStreamData(streamID: streamID, bytes: UnsafeRawBufferPointer(start: data, count: length),
                                            fin: (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0)
            return 0
        }
        cb.acked_stream_data_offset = { _, streamID, offset, length, userData, _ in
            guard let connection = QUICConnection.from(userData) else { return 0 }
            if streamID == connection.controlStreamID {
                connection.control.acknowledge(upTo: offset &+ length)
            }
            return 0
        }
        cb.extend_max_stream_data = { _, streamID, _, userData, _ in
            guard let connection = QUICConnection.from(userData) else { return 0 }
            if streamID == connection.controlStreamID { connection.controlStreamBlocked = false }
            return 0
        }
        cb.path_validation = { _, _, path, result, userData in
            guard let connection = QUICConnection.from(userData), let path else { return 0 }
            if result == NGTCP2_PATH_VALIDATION_RESULT_SUCCESS,
               let remote = path.pointee.remote.addr,
               let address = TransportAddress(sockaddr: remote, length: path.pointee.remote.addrlen) {
                connection.remoteAddress = address
            }
            return 0
        }
        return cb
    }

    /// Makes a new source connection ID with its stateless reset token and routes it here.
    func issueConnectionID(_ cid: UnsafeMutablePointer<ngtcp2_cid>, resetToken: UnsafeMutablePointer<UInt8>, length: Int) -> Bool {
        var bytes = [UInt8](repeating: 0, count: length)
        guard gnutls_rnd(GNUTLS_RND_NONCE, &bytes, length) == 0 else { return false }
        ngtcp2_cid_init(cid, bytes, length)
        guard endpoint.makeResetToken(resetToken, for: cid) else { return false }
        endpoint.route(cid, to: self)
        return true
    }

    func retireConnectionID(_ cid: UnsafePointer<ngtcp2_cid>) {
        endpoint.unroute(cid, from: self)
    }

    func didCompleteHandshake() {
        guard lifecycle.handshakeCompleted() else { return }
        endpoint.handshakeEnded(self)
        if let conn, let path = ngtcp2_conn_get_path(conn), let remote = path.pointee.remote.addr,
           let address = TransportAddress(sockaddr: remote, length: path.pointee.remote.addrlen) {
            remoteAddress = address
        }
        endpoint.delegate?.connectionEstablished(self)
    }

    func didReceiveStreamData(streamID: Int64, bytes: UnsafeRawBufferPointer, fin: Bool) {
        if isServer {
            // The control stream is the client's first bidirectional stream; anything else is ignored.
            guard streamID == 0 else { return }
            controlStreamID = 0
        } else {
            guard streamID == controlStreamID else { return }
        }
        guard lifecycle.requestedClose == nil else { return }
        endpoint.delegate?.connection(self, didReceiveControlData: bytes, fin: fin)
    }
}
