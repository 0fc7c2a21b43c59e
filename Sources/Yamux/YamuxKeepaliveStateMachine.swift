/// Our pings: the periodic keepalive and the application's RTT probes.
///
/// Pure: time comes in as `now`. A keepalive ping is sent every `interval` after the
/// previous one was answered; if it is not answered within `timeout` the session must end.
/// An application ping that is not answered within `timeout` is reported and forgotten.
struct YamuxKeepaliveStateMachine: Hashable, Sendable {
    typealias Instant = ContinuousClock.Instant

    /// One ping awaiting its ACK.
    struct OutstandingPing: Hashable, Sendable {
        var opaque: UInt32
        var sentAt: Instant
        var isKeepalive: Bool
    }

    /// What a tick asks the session to do.
    struct TickResult: Hashable, Sendable {
        /// Application pings whose deadline passed.
        var timedOutPings: [UInt32] = []
        /// The keepalive ping went unanswered: end the session.
        var keepaliveFailed = false
        /// Send a keepalive ping with this opaque value.
        var pingToSend: UInt32?
    }

    private let interval: Duration?
    private let timeout: Duration
    private let maximumOutstanding: Int
    private var outstanding: [OutstandingPing] = []
    private var nextOpaque: UInt32 = 0
    /// When the next keepalive ping is due; `nil` while one is outstanding or when disabled.
    private var nextKeepaliveAt: Instant?

    /// Creates the machine; the first keepalive ping is due at `now + interval`.
    init(interval: Duration?, timeout: Duration, maximumOutstanding: Int, now: Instant) {
        self.interval = interval
        self.timeout = timeout
        self.maximumOutstanding = maximumOutstanding
        self.nextKeepaliveAt = interval.map { now + $0 }
    }

    /// The earliest instant at which ``tick(now:)`` has something to do.
    var nextDeadline: Instant? {
        var deadline = self.nextKeepaliveAt
        for ping in self.outstanding {
            let pingDeadline = ping.sentAt + self.timeout
            if deadline.map({ pingDeadline < $0 }) ?? true {
                deadline = pingDeadline
            }
        }
        return deadline
    }

    /// Registers an application ping.
    /// - Returns: The opaque value to send with SYN.
    /// - Throws: `.tooManyPings` when the ping table is full.
    mutating func sendPing(now: Instant) throws(YamuxError) -> UInt32 {
        guard self.outstanding.count < self.maximumOutstanding else {
            throw .tooManyPings(limit: self.maximumOutstanding)
        }
        return self.register(now: now, isKeepalive: false)
    }

    /// Handles a ping ACK.
    /// - Returns: The round-trip time, or `nil` for an ACK that matches none of our pings.
    mutating func receiveACK(opaque: UInt32, now: Instant) -> Duration? {
        guard let index = self.outstanding.firstIndex(where: { $0.opaque == opaque }) else {
            return nil
        }
        let ping = self.outstanding.remove(at: index)
        if ping.isKeepalive, let interval = self.interval {
            self.nextKeepaliveAt = now + interval
        }
        return now - ping.sentAt
    }

    /// Advances time: expires pings and sends the keepalive when due.
    mutating func tick(now: Instant) -> TickResult {
        var result = TickResult()
        var index = 0
        while index < self.outstanding.count {
            let ping = self.outstanding[index]
            if now >= ping.sentAt + self.timeout {
                if ping.isKeepalive {
                    result.keepaliveFailed = true
                    return result
                }
                result.timedOutPings.append(ping.opaque)
                self.outstanding.remove(at: index)
            } else {
                index += 1
            }
        }
        if let due = self.nextKeepaliveAt, now >= due {
            if self.outstanding.count < self.maximumOutstanding {
                self.nextKeepaliveAt = nil
                result.pingToSend = self.register(now: now, isKeepalive: true)
            }
        }
        return result
    }

    private mutating func register(now: Instant, isKeepalive: Bool) -> UInt32 {
        let opaque = self.nextOpaque
        // Our own counter: wrapping after 2^32 pings is harmless, old ones have expired.
        self.nextOpaque &+= 1
        self.outstanding.append(OutstandingPing(opaque: opaque, sentAt: now, isKeepalive: isKeepalive))
        return opaque
    }
}
