/// The lifecycle of one QUIC connection as a value: its phase, the close the layer above asked
/// for and its linger, ACK coalescing, and the closing and draining periods with their
/// answers to late packets. No ngtcp2, no socket, no clock: `QUICConnection` reports events
/// with the time and carries out what this answers. Unit-tested in `ConnectionLifecycleTests`.
struct ConnectionLifecycle: Equatable {
    /// Where the connection is.
    enum Phase: Equatable {
        /// Handshake in progress.
        case handshaking
        /// Handshake complete; datagrams and stream data flow.
        case established
        /// We sent CONNECTION_CLOSE; late packets are answered with it (backing off) until then.
        case closing(until: UInt64)
        /// The peer closed; we stay silent until then.
        case draining(until: UInt64)
        /// Resources released.
        case closed
    }

    /// A close the layer above asked for, carried out by the next flush.
    struct RequestedClose: Equatable {
        var code: UInt64
        var isApplication: Bool
        /// At most 256 bytes.
        var reason: [UInt8]
    }

    /// What to do with a packet that arrived.
    enum Arrival: Equatable {
        /// Hand it to ngtcp2.
        case read
        /// Send the stored CONNECTION_CLOSE again (closing period, exponential backoff).
        case resendClose
        /// Drop it.
        case ignore
    }

    /// What a packet ngtcp2 has read brought, as far as writing is concerned.
    enum PacketContent: Equatable {
        /// Datagrams and nothing that wants a prompt answer.
        case datagrams
        /// Neither datagrams nor stream data, while nothing of ours waits to be sent or is in
        /// flight: an ACK (most often), a PING, padding. A write would carry nothing new; an
        /// ACK that ngtcp2 owes for it goes out when ngtcp2's own timer says.
        case quiet
        /// Anything else (stream data, a handshake packet, or something of ours is queued).
        case other
    }

    /// What follows a packet ngtcp2 has read.
    enum AfterRead: Equatable {
        /// Something needs an answer (or enough ACKs are owed): flush now.
        case flush
        /// Only datagrams arrived: hold the ACK until the coalescing deadline.
        case holdAck
        /// Nothing to answer: no write; the timer decides when the next one is due.
        case waitForTimer
    }

    /// What a flush does.
    enum FlushStep: Equatable {
        /// Nothing may be written (closing, draining, closed; or waiting for control data).
        case skip
        /// Write control data, datagrams, ACKs, probes.
        case write
        /// A close is requested but control frames (ERROR, GOAWAY) must leave first: write
        /// them, then ask `afterControlWrite`.
        case writeControlFirst
        /// Write CONNECTION_CLOSE with this code now.
        case close(RequestedClose)
    }

    /// What a timer that fired asks for.
    struct TimerStep: Equatable {
        /// The closing or draining period is over: free the connection.
        var destroy = false
        /// The close linger ran out: flush (which closes).
        var flushForLinger = false
        /// ngtcp2's own timer is due: `ngtcp2_conn_handle_expiry`, then flush.
        var handleExpiry = false
    }

    /// How long a close waits for pending control frames to be sent.
    static let closeLingerNanoseconds: UInt64 = 250_000_000
    /// How long the relay holds ACKs of datagram-only packets (`AckPolicy.coalescing`; well
    /// inside the 25 ms max_ack_delay we advertise).
    static let ackCoalescingNanoseconds: UInt64 = 20_000_000
    /// The longest gap between two answers to late packets in the closing period, in packets.
    static let maximumCloseResendGap = 1024

    private(set) var phase: Phase = .handshaking
    private(set) var requestedClose: RequestedClose?
    /// While control data waits to leave before a requested close: give up waiting then.
    private(set) var lingerDeadline: UInt64?
    /// When the oldest received packet whose ACK is held arrived.
    private(set) var ackPendingSince: UInt64?
    /// Packets received since the last write whose ACK is held.
    private(set) var heldAckPackets = 0
    private var packetsSinceCloseSent = 0
    private var closeResendGap = 1
    /// Held ACKs after which the ACK goes at once (ngtcp2's immediate-ACK rule).
    let ackThreshold: Int

    /// How long the ACK of datagram-only packets may be held, in nanoseconds.
    let ackHoldNanoseconds: UInt64

    init(ackThreshold: Int, ackHoldNanoseconds: UInt64 = ackCoalescingNanoseconds) {
        self.ackThreshold = max(1, ackThreshold)
        self.ackHoldNanoseconds = ackHoldNanoseconds
    }

    /// Established with no close requested: the layer above may send and hears what arrives.
    var isOpen: Bool { phase == .established && requestedClose == nil }

    /// The handshake completed; `false` if the connection was not handshaking.
    mutating func handshakeCompleted() -> Bool {
        guard phase == .handshaking else { return false }
        phase = .established
        return true
    }

    /// The layer above asks to close. `true` if this is the first request of a live
    /// connection (the caller schedules a flush); later requests are ignored.
    mutating func requestClose(_ close: RequestedClose) -> Bool {
        switch phase {
        case .handshaking, .established:
            guard requestedClose == nil else { return false }
            requestedClose = close
            return true
        case .closing, .draining, .closed:
            return false
        }
    }

    mutating func packetArrived() -> Arrival {
        switch phase {
        case .handshaking, .established:
            return .read
        case .closing:
            packetsSinceCloseSent += 1
            guard packetsSinceCloseSent >= closeResendGap else { return .ignore }
            packetsSinceCloseSent = 0
            closeResendGap = min(closeResendGap * 2, Self.maximumCloseResendGap)
            return .resendClose
        case .draining, .closed:
            return .ignore
        }
    }

    /// A packet was read.
    mutating func packetRead(_ content: PacketContent, now: UInt64) -> AfterRead {
        guard isOpen else { return .flush }
        switch content {
        case .other: return .flush
        case .quiet: return .waitForTimer
        case .datagrams: break
        }
        if ackPendingSince == nil { ackPendingSince = now }
        heldAckPackets += 1
        return heldAckPackets >= ackThreshold ? .flush : .holdAck
    }

    /// A flush begins (every write carries the held ACKs). `controlPending`: control data
    /// waits and can be written (a server whose client never opened the control stream has
    /// nowhere to write it).
    mutating func beginFlush(controlPending: Bool) -> FlushStep {
        ackPendingSince = nil
        heldAckPackets = 0
        switch phase {
        case .handshaking, .established: break
        case .closing, .draining, .closed: return .skip
        }
        guard let close = requestedClose else { return .write }
        if controlPending, phase == .established { return .writeControlFirst }
        requestedClose = nil
        return .close(close)
    }

    /// After `writeControlFirst`: close now, or wait (until the linger deadline) for control
    /// data that pacing or congestion held back.
    mutating func afterControlWrite(controlStillPending: Bool, now: UInt64) -> FlushStep {
        guard let close = requestedClose else { return .skip }
        if controlStillPending {
            let deadline = lingerDeadline ?? (now &+ Self.closeLingerNanoseconds)
            lingerDeadline = deadline
            if now < deadline { return .skip }
        }
        requestedClose = nil
        return .close(close)
    }

    /// We sent CONNECTION_CLOSE: the closing period lasts three PTOs.
    mutating func closeSent(now: UInt64, pto: UInt64) {
        phase = .closing(until: now &+ 3 &* pto)
        packetsSinceCloseSent = 0
        closeResendGap = 1
    }

    /// The peer closed (or we are already closing): the draining period lasts three PTOs.
    mutating func peerClosed(now: UInt64, pto: UInt64) {
        phase = .draining(until: now &+ 3 &* pto)
    }

    /// The connection's resources were released.
    mutating func released() {
        phase = .closed
        requestedClose = nil
        lingerDeadline = nil
    }

    /// When the timer must fire, given ngtcp2's own expiry and whether anything waits to be
    /// sent. Held ACKs push ngtcp2's ACK timer (which on a short path would send one ACK-only
    /// packet per packet received) to `ackHoldNanoseconds` after the first held one.
    func nextDeadline(ngtcp2Expiry: UInt64, nothingToSend: Bool) -> UInt64 {
        switch phase {
        case .closing(let until), .draining(let until): return until
        case .closed: return .max
        case .handshaking, .established:
            let deadline = min(ngtcp2Expiry, lingerDeadline ?? .max)
            if let since = ackPendingSince, nothingToSend, lingerDeadline == nil {
                return max(deadline, since &+ ackHoldNanoseconds)
            }
            return deadline
        }
    }

    /// The timer fired at `now`.
    func timerFired(now: UInt64, ngtcp2Expiry: UInt64) -> TimerStep {
        switch phase {
        case .closing(let until), .draining(let until):
            return TimerStep(destroy: now >= until)
        case .closed:
            return TimerStep()
        case .handshaking, .established:
            return TimerStep(flushForLinger: lingerDeadline.map { $0 <= now } ?? false, handleExpiry: ngtcp2Expiry <= now)
        }
    }
}
