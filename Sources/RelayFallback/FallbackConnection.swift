import Logging
import NIOCore
import QUICTransport
import RelayCore
import RelayEngine
import Synchronization
import Yamux
import YamuxNIO

/// One client of the TCP fallback (DESIGN §9): yamux (over TLS, plain TCP, or WebSocket
/// messages) whose stream 1 carries the control frames of §4, stream 3 the datagrams as
/// `length u16 | payload`. It is the relay's ``RelayPeerLink`` for that client.
///
/// Threads: yamux runs on the TCP channel's event loop; the relay calls in from its own loop
/// thread (`sendControl`, `sendDatagram`, `close`), which hop here.
final class FallbackConnection: RelayPeerLink, @unchecked Sendable {
    // @unchecked Sendable: mutable state is confined to `eventLoop`; `queuedOutboundBytes`
    // is atomic, `outbox` behind its mutex; the rest is immutable.

    /// Datagrams queued towards the client beyond this are dropped (`queue_full`), as QUIC
    /// drops what its send queue cannot take: a slow TCP reader loses datagrams, it never
    /// makes the relay buffer without bound.
    static let outboundQueueLimit = 512 * 1024
    /// The most datagrams handed to the relay per hop.
    static let batchSize = 128

    let remoteAddress: TransportAddress
    let localHost: String
    let eventLoop: any EventLoop
    /// `tcp`, or `websocket` once the upgrade chose it (set before ``start()``).
    private(set) var transport: RelayCounters.Transport = .tcp
    private let relay: RelayServer
    private let logger: Logger
    let multiplexer: YamuxMultiplexer
    private var handle: UInt64?
    private var controlStream: YamuxStreamChannel?
    private var datagramStream: YamuxStreamChannel?
    private var controlBacklog: [UInt8] = []
    /// Received datagram bytes not yet taken by the relay (bounded by the stream window).
    private var inbound = ByteBuffer()
    private var relayBusy = false
    private var pacingTimer: Scheduled<Void>?
    private var closed = false
    private var unexpectedStreamLog = LogThrottle<Int>()
    private let queuedOutboundBytes = Atomic<Int>(0)
    /// Framed datagrams from the relay's thread not yet handed to stream 3.
    private struct Outbox {
        var bytes = ByteBuffer()
        var drainScheduled = false
    }
    private let outbox = Mutex(Outbox())

    init(remoteAddress: TransportAddress, localHost: String, eventLoop: any EventLoop, relay: RelayServer, logger: Logger) {
        self.remoteAddress = remoteAddress
        self.localHost = localHost
        self.eventLoop = eventLoop
        self.relay = relay
        self.logger = logger
        let acceptor = StreamAcceptor()
        self.multiplexer = YamuxMultiplexer(role: .server, eventLoop: eventLoop) { stream in
            acceptor.connection?.accept(stream) ?? false
        }
        acceptor.connection = self
        self.multiplexer.sessionClosed.whenComplete { [self] _ in self.transportClosed() }
    }

    /// The most control bytes kept while the relay admits the connection (a few frames).
    static let controlBacklogLimit = 64 * 1024

    /// Adds the yamux session at the end of `pipeline` and asks the relay in: the byte
    /// stream is ready (TCP accepted, TLS with the right ALPN, or a WebSocket upgraded).
    func attach(to pipeline: ChannelPipeline.SynchronousOperations, over transport: RelayCounters.Transport) throws {
        try pipeline.addHandler(multiplexer)
        start(transport: transport)
    }

    /// Asks the relay in.
    func start(transport: RelayCounters.Transport = .tcp) {
        self.transport = transport
        relay.attachLink(self) { [self] handle in
            self.eventLoop.execute {
                guard let handle else {
                    // The relay logged the reason (throttled per source).
                    self.logger.debug("fallback connection refused", metadata: ["zrc.peer.addr": "\(self.remoteAddress)"])
                    self.multiplexer.close()
                    return
                }
                guard !self.closed else {
                    self.relay.linkClosed(handle)
                    return
                }
                self.handle = handle
                if !self.controlBacklog.isEmpty {
                    self.relay.linkReceivedControl(handle, self.controlBacklog)
                    self.controlBacklog.removeAll()
                }
                self.offerDatagrams()
            }
        }
    }

    // MARK: Streams from the client

    private func accept(_ stream: YamuxStreamChannel) -> Bool {
        switch stream.id {
        case FallbackWire.controlStreamID where controlStream == nil:
            controlStream = stream
            stream.setEventHandler { [self] event in self.controlEvent(event, stream) }
            return true
        case FallbackWire.datagramStreamID where datagramStream == nil:
            datagramStream = stream
            stream.setEventHandler { [self] event in self.datagramEvent(event, stream) }
            return true
        default:
            // Refusals are charged to the session's control-frame budget; the lines are throttled.
            let now = RelayInstant(nanoseconds: NIODeadline.now().uptimeNanoseconds)
            if case .log(let suppressed) = unexpectedStreamLog.record(0, now: now) {
                logger.info("fallback client opened an unexpected stream; reset",
                            metadata: ["stream": "\(stream.id)", "suppressed": "\(suppressed)"])
            }
            return false
        }
    }

    private func controlEvent(_ event: YamuxStreamEvent, _ stream: YamuxStreamChannel) {
        switch event {
        case .data(let buffer):
            let bytes = Array(buffer.readableBytesView)
            stream.consumed(bytes.count)
            if let handle {
                relay.linkReceivedControl(handle, bytes)
            } else if controlBacklog.count + bytes.count <= Self.controlBacklogLimit {
                controlBacklog.append(contentsOf: bytes)
            } else {
                logger.info("fallback client sent too much before admission; closed", metadata: ["zrc.peer.addr": "\(remoteAddress)"])
                multiplexer.close()
            }
        case .endOfInput, .closed, .reset:
            // The control stream is the client's session (as QUIC's control stream): its end
            // ends the connection.
            multiplexer.close()
        }
    }

    private func datagramEvent(_ event: YamuxStreamEvent, _ stream: YamuxStreamChannel) {
        switch event {
        case .data(var buffer):
            inbound.writeBuffer(&buffer)
            offerDatagrams()
        case .endOfInput, .closed, .reset:
            break
        }
    }

    /// Hands the complete datagrams received so far to the relay, one batch at a time; the
    /// stream window is reopened only for what the relay took.
    private func offerDatagrams() {
        guard let handle, !relayBusy, !closed, pacingTimer == nil else { return }
        var batch: [[UInt8]] = []
        var sizes: [Int] = []
        var cursor = inbound.readerIndex
        while batch.count < Self.batchSize, let size = FallbackWire.framedSize(in: inbound, at: cursor),
              let payload = inbound.getBytes(at: cursor + 2, length: size - 2) {
            batch.append(payload)
            sizes.append(size)
            cursor += size
        }
        guard !batch.isEmpty else { return }
        relayBusy = true
        relay.linkReceivedDatagrams(handle, batch) { [self] taken, delay in
            self.eventLoop.execute {
                self.relayBusy = false
                let consumed = sizes.prefix(taken).reduce(0, +)
                self.inbound.moveReaderIndex(forwardBy: consumed)
                self.inbound.discardReadBytes()
                if consumed > 0 { self.datagramStream?.consumed(consumed) }
                if delay > 0 {
                    self.pacingTimer = self.eventLoop.scheduleTask(in: .nanoseconds(Int64(clamping: delay))) {
                        self.pacingTimer = nil
                        self.offerDatagrams()
                    }
                } else {
                    self.offerDatagrams()
                }
            }
        }
    }

    private func transportClosed() {
        guard !closed else { return }
        closed = true
        pacingTimer?.cancel()
        // The streams' handlers capture this connection: let go of both so nothing cycles.
        controlStream = nil
        datagramStream = nil
        if let handle { relay.linkClosed(handle) }
    }

    // MARK: RelayPeerLink (called on the relay's loop thread)

    func sendControl(_ bytes: [UInt8]) {
        eventLoop.execute { [self] in
            self.controlStream?.write(ByteBuffer(bytes: bytes))
        }
    }

    /// Datagrams are appended to one outbox and written to stream 3 in one piece per hop to
    /// the channel's loop: a burst costs one yamux write, one TLS record and one syscall, not
    /// one of each per datagram.
    func sendDatagram(_ payload: UnsafeRawBufferPointer) -> Bool {
        guard payload.count <= FallbackWire.maximumDatagramLength else { return false }
        let size = 2 + payload.count
        let queued = queuedOutboundBytes.add(size, ordering: .relaxed).newValue
        guard queued <= Self.outboundQueueLimit else {
            queuedOutboundBytes.subtract(size, ordering: .relaxed)
            return false
        }
        let mustSchedule = outbox.withLock { outbox in
            FallbackWire.writeDatagram(payload, into: &outbox.bytes)
            defer { outbox.drainScheduled = true }
            return !outbox.drainScheduled
        }
        if mustSchedule { eventLoop.execute { [self] in self.drainOutbox() } }
        return true
    }

    /// On the channel's loop: everything queued since the last drain, as one write.
    private func drainOutbox() {
        let bytes = outbox.withLock { outbox -> ByteBuffer in
            let taken = outbox.bytes
            outbox.bytes = ByteBuffer()
            outbox.drainScheduled = false
            return taken
        }
        let size = bytes.readableBytes
        guard size > 0 else { return }
        guard let stream = datagramStream else {
            queuedOutboundBytes.subtract(size, ordering: .relaxed)
            return
        }
        stream.write(bytes).whenComplete { _ in self.queuedOutboundBytes.subtract(size, ordering: .relaxed) }
    }

    func close(code: RelayErrorCode) {
        eventLoop.execute { [self] in
            self.logger.debug("fallback connection closed by the relay", metadata: ["zrc.error.code": "\(code.name)"])
            // Let the ERROR / GOAWAY frame already queued leave first (as QUIC's close lingers).
            self.eventLoop.scheduleTask(in: .milliseconds(100)) { self.multiplexer.close() }
        }
    }
}

/// Lets the multiplexer's inbound-stream callback reach its connection without a cycle.
private final class StreamAcceptor: @unchecked Sendable {
    // @unchecked Sendable: set once before the channel is active, read on its event loop.
    weak var connection: FallbackConnection?
}
