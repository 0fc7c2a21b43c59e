#if canImport(Glibc)
import Glibc
#endif
internal import CNGTCP2

/// One QUIC connection: owns the `ngtcp2_conn` and the GnuTLS session, its datagram send queue
/// and its control-stream send buffer. Confined to its endpoint's thread.
public final class QUICConnection {
    /// A handle unique within the endpoint, for the layer above to key its own state.
    public let id: UInt64
    /// Whether this is the server side of the connection.
    public let isServer: Bool
    /// Free for the layer above (the relay keeps its per-connection state here).
    public var context: AnyObject?
    /// The peer's current address (it changes with NAT rebinding and migration).
    public internal(set) var remoteAddress: TransportAddress

    unowned let endpoint: QUICEndpoint
    /// Phase, requested close, ACK coalescing, closing/draining periods (a pure value).
    var lifecycle: ConnectionLifecycle
    var conn: OpaquePointer?
    var session: gnutls_session_t?
    let connRef: UnsafeMutablePointer<ngtcp2_crypto_conn_ref>
    var registeredIDs: [ConnectionIDKey] = []
    /// Counted in the endpoint's `halfOpenCount` (server, handshake not complete).
    var countsAsHalfOpen = false

    // Timer bookkeeping (see TimerHeap).
    var scheduledDeadline: UInt64 = .max
    var isQueuedForFlush = false
    /// Set by callbacks while a packet is read when it needs an answer sooner than an ACK.
    var packetNeedsPromptWrite = false
    /// Whether the delegate has heard `connectionClosed`.
    var closeNotified = false

    // Sending.
    var datagrams: DatagramQueue
    var control = StreamSendBuffer()
    var controlStreamID: Int64 = -1
    var controlStreamBlocked = false
    /// Our CONNECTION_CLOSE, kept to answer late packets in the closing period.
    var closePacket: [UInt8] = []

    /// Counters for the layer above.
    public internal(set) var datagramsReceived: UInt64 = 0
    public internal(set) var datagramsSent: UInt64 = 0

    init(id: UInt64, endpoint: QUICEndpoint, isServer: Bool, remote: TransportAddress) {
        self.id = id
        self.endpoint = endpoint
        self.isServer = isServer
        self.remoteAddress = remote
        self.datagrams = DatagramQueue(capacity: endpoint.configuration.datagramQueueCapacity)
        let acks = endpoint.configuration.ackPolicy
        self.lifecycle = ConnectionLifecycle(ackThreshold: acks.threshold, ackHoldNanoseconds: acks.holdNanoseconds)
        self.connRef = .allocate(capacity: 1)
        connRef.initialize(to: ngtcp2_crypto_conn_ref(get_conn: { ref in
            guard let ref, let user = ref.pointee.user_data else { return nil }
            return Unmanaged<QUICConnection>.fromOpaque(user).takeUnretainedValue().conn
        }, user_data: nil))
        connRef.pointee.user_data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        releaseResources()
        connRef.deallocate()
    }

    /// Frees ngtcp2 and GnuTLS state and any queued datagram slots.
    func releaseResources() {
        if let conn { ngtcp2_conn_del(conn) }
        conn = nil
        if let session { gnutls_deinit(session) }
        session = nil
        while let entry = datagrams.removeFirst() { endpoint.slabs.release(entry.slot) }
        datagrams.shrinkIfEmpty()
        control.removeAll()
        lifecycle.released()
    }

    // MARK: Public API (endpoint thread only)

    /// Whether the handshake has completed and the connection is not closing.
    public var isEstablished: Bool { lifecycle.isOpen }

    /// Whether the peer advertised DATAGRAM support (`max_datagram_frame_size` > 0).
    public var peerSupportsDatagrams: Bool {
        peerMaxDatagramFrameSize > 0
    }

    var peerMaxDatagramFrameSize: UInt64 {
        guard let conn, let params = ngtcp2_conn_get_remote_transport_params(conn) else { return 0 }
        return params.pointee.max_datagram_frame_size
    }

    /// The largest datagram payload that fits in one packet on the current path for this peer.
    public var maxDatagramPayloadSize: Int {
        guard let conn else { return 0 }
        let pathMax = Int(ngtcp2_conn_get_path_max_tx_udp_payload_size(conn))
        let dcidLength = Int(ngtcp2_conn_get_dcid(conn)?.pointee.datalen ?? 20)
        // Short header (1) + DCID + packet number (≤ 4) + AEAD tag (16) + frame type (1) + length varint (≤ 2).
        let byPath = pathMax - 1 - dcidLength - 4 - 16 - 3
        let frameMax = peerMaxDatagramFrameSize
        let byPeer = frameMax > 3 ? Int(min(frameMax - 3, UInt64(Int32.max))) : 0
        return max(0, min(byPath, byPeer, endpoint.configuration.maxDatagramPayload))
    }

    /// The local address the peer's packets arrive on (the current path's local side): on a
    /// wildcard-bound server, the address the client reached.
    public var localAddress: TransportAddress? {
        guard let conn, let path = ngtcp2_conn_get_path(conn), let local = path.pointee.local.addr else { return nil }
        return TransportAddress(sockaddr: local, length: path.pointee.local.addrlen)
    }

    /// The server name (SNI) the client asked for, if any (server role).
    public var requestedServerName: String? {
        guard let session else { return nil }
        var buffer = [CChar](repeating: 0, count: 256)
        var length = buffer.count
        var type: UInt32 = 0
        guard gnutls_server_name_get(session, &buffer, &length, &type, 0) == 0, length > 0, length < buffer.count else { return nil }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Current smoothed RTT, for diagnostics.
    public var smoothedRTT: Duration {
        guard let conn else { return .zero }
        var stat = ngtcp2_conn_stat()
        ngtcp2_conn_get_conn_stat_versioned(conn, NGTCP2_CONN_STAT_VERSION, &stat)
        return .nanoseconds(Int64(clamping: stat.smoothed_rtt))
    }

    /// Queues a DATAGRAM frame for sending. The bytes are copied; the call never blocks.
    @discardableResult
    public func sendDatagram(_ payload: UnsafeRawBufferPointer) -> Result<Void, DatagramDropReason> {
        guard isEstablished, peerSupportsDatagrams else { return .failure(.notReady) }
        guard payload.count <= maxDatagramPayloadSize, payload.count <= DatagramSlabPool.slotSize else {
            return .failure(.tooLarge)
        }
        guard !datagrams.isFull, let slot = endpoint.slabs.acquire() else { return .failure(.queueFull) }
        if let base = payload.baseAddress, payload.count > 0 {
            endpoint.slabs.pointer(slot).copyMemory(from: base, byteCount: payload.count)
        }
        datagrams.append(.init(slot: slot, length: UInt16(payload.count), enqueuedAt: endpoint.loopTime))
        endpoint.scheduleFlush(self)
        return .success(())
    }

    /// Convenience for `[UInt8]` payloads.
    @discardableResult
    public func sendDatagram(_ payload: [UInt8]) -> Result<Void, DatagramDropReason> {
        payload.withUnsafeBytes { sendDatagram($0) }
    }

    /// Appends bytes to the control stream (client: opens it on first use). `fin` ends it.
    public func writeControl(_ bytes: [UInt8], fin: Bool = false) {
        guard lifecycle.isOpen else { return }
        control.append(bytes, fin: fin)
        endpoint.scheduleFlush(self)
    }

    /// Closes the connection with an application error code (the relay's protocol code) or a
    /// transport code. CONNECTION_CLOSE goes out on the next flush; the delegate hears
    /// `connectionClosed` once.
    public func close(errorCode: UInt64, isApplicationError: Bool = true, reason: String = "") {
        let request = ConnectionLifecycle.RequestedClose(code: errorCode, isApplication: isApplicationError,
                                                         reason: Array(reason.utf8.prefix(256)))
        if lifecycle.requestClose(request) { endpoint.scheduleFlush(self) }
    }

    // MARK: Notifications to the delegate

    func notifyClosed(_ reason: QUICCloseReason) {
        guard !closeNotified else { return }
        closeNotified = true
        endpoint.delegate?.connectionClosed(self, reason: reason)
    }
}

@available(*, unavailable)
extension QUICConnection: Sendable {}

/// Bytes written to a QUIC stream but not yet acknowledged. ngtcp2 does not copy stream data:
/// it refers to it until the peer acknowledges it, so each write is kept in its own chunk at a
/// stable address until `acknowledge(upTo:)` passes its end. Only control frames go this way.
struct StreamSendBuffer {
    struct Chunk {
        let bytes: UnsafeMutableRawBufferPointer
        let offset: UInt64  // stream offset of the first byte
    }

    private(set) var chunks: [Chunk] = []
    /// Stream offset up to which data has been handed to ngtcp2.
    private(set) var sentOffset: UInt64 = 0
    /// Stream offset after the last byte appended.
    private(set) var endOffset: UInt64 = 0
    private(set) var finRequested = false
    private(set) var finSent = false

    var hasUnsent: Bool { sentOffset < endOffset || (finRequested && !finSent) }
    /// Everything appended was sent and acknowledged (nothing a loss could make us resend).
    var isSettled: Bool { chunks.isEmpty && !hasUnsent }

    mutating func append(_ bytes: [UInt8], fin: Bool) {
        guard !finRequested else { return }
        if !bytes.isEmpty {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
            buffer.copyBytes(from: bytes)
            chunks.append(Chunk(bytes: buffer, offset: endOffset))
            endOffset += UInt64(bytes.count)
        }
        if fin { finRequested = true }
    }

    /// The unsent bytes of the first chunk that still has some, as pointer and length.
    var nextUnsent: (pointer: UnsafeMutableRawPointer?, length: Int, isLast: Bool) {
        for (index, chunk) in chunks.enumerated() {
            let end = chunk.offset + UInt64(chunk.bytes.count)
            if sentOffset < end {
                let skip = Int(sentOffset - chunk.offset)
                return (chunk.bytes.baseAddress.map { $0 + skip }, chunk.bytes.count - skip, index == chunks.count - 1)
            }
        }
        return (nil, 0, true)
    }

    mutating func markSent(_ count: Int, fin: Bool) {
        sentOffset += UInt64(count)
        if fin && sentOffset == endOffset { finSent = true }
    }

    /// Frees chunks the peer has acknowledged completely.
    mutating func acknowledge(upTo offset: UInt64) {
        while let first = chunks.first, first.offset + UInt64(first.bytes.count) <= offset {
            first.bytes.deallocate()
            chunks.removeFirst()
        }
    }

    mutating func removeAll() {
        for chunk in chunks { chunk.bytes.deallocate() }
        chunks.removeAll()
    }
}
