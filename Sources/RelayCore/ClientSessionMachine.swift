/// The client side of one relay session (DESIGN §8) as a state machine without I/O: which
/// transport and address to connect to, when to (re)connect, how GOAWAY and refusals are
/// followed, when a silent path is dead, and what happens to datagrams sent meanwhile.
///
/// The shell calls one method per event with the monotonic time since it started and
/// carries out the returned actions; `tick` must be called every few hundred milliseconds.
/// Randomness (the jitter) comes from `random`, so tests are exact.
///
/// States (`State`): connecting → allocating → waiting | paired | peerGone, and on any loss
/// reconnecting(attempt, in) → connecting…; failed(reason) and closed are final.
public struct ClientSessionMachine: Sendable {
    /// A way to reach the relay, in the order `auto` tries them.
    public enum Transport: String, Sendable, Hashable, CaseIterable {
        case quic, tcp, websocket
    }

    /// The observable state (printed by the CLI, one line per change).
    public enum State: Sendable, Hashable, CustomStringConvertible {
        case connecting(Transport)
        case allocating
        case waiting
        case paired
        case peerGone
        case reconnecting(attempt: Int, in: Duration)
        case failed(String)
        case closed

        public var description: String {
            switch self {
            case .connecting(let transport): return "connecting(\(transport.rawValue))"
            case .allocating: return "allocating"
            case .waiting: return "waiting"
            case .paired: return "paired"
            case .peerGone: return "peerGone"
            case .reconnecting(let attempt, let delay): return "reconnecting(attempt: \(attempt), in: \(delay.milliseconds) ms)"
            case .failed(let reason): return "failed(\(reason))"
            case .closed: return "closed"
            }
        }

        /// Whether the session holds an allocation now (datagrams go out at once).
        public var isAllocated: Bool {
            switch self {
            case .waiting, .paired, .peerGone: return true
            default: return false
            }
        }

        public var isFinal: Bool {
            switch self {
            case .failed, .closed: return true
            default: return false
            }
        }
    }

    /// What the shell must do.
    public enum Action: Sendable, Hashable {
        /// Close the current connection (if any) and open one with this transport to `address`.
        case connect(Transport, address: String)
        /// Send ALLOCATE (the peer id and token the shell holds) on the new connection.
        case allocate
        /// Send this datagram on the current connection.
        case sendDatagram([UInt8])
        /// Close the current connection.
        case closeConnection
        /// Try QUIC to `address` in the background (the session stays where it is).
        case probe(Transport, address: String)
        /// The state changed: report it (timestamp, state, reason).
        case stateChanged(State, reason: String)
    }

    /// Limits and timings (DESIGN §8 defaults).
    public struct Configuration: Sendable, Hashable {
        /// `host:port` of the relay.
        public var relay: String
        /// Transports in the order tried (`--transport auto`: every one the shell supports).
        public var transports: [Transport]
        /// Consecutive failed attempts before `failed` (0 = never stop).
        public var maxAttempts: Int = 10
        /// 250 ms doubling to 30 s, full jitter.
        public var backoff = ExponentialBackoff(base: .milliseconds(250), cap: .seconds(30))
        /// Connected this long, the failed-attempt count starts again from zero.
        public var attemptsResetAfter: Duration = .seconds(30)
        /// The relay PINGs at this interval; nothing heard for twice as long is a dead path.
        public var keepaliveInterval: Duration = .seconds(30)
        /// How long one transport gets to connect, and then to be allocated.
        public var connectTimeout: Duration = .seconds(3)
        /// Datagrams held while not allocated (oldest dropped beyond it).
        public var queueCapacity = 100
        /// After falling back from QUIC, how often QUIC is tried again in the background.
        public var quicProbeInterval: Duration = .seconds(60)

        public init(relay: String, transports: [Transport] = Transport.allCases) {
            self.relay = relay
            self.transports = transports.isEmpty ? [.quic] : transports
        }
    }

    /// Refusals that retrying cannot heal (DESIGN §8): the session fails at once.
    public static let finalCodes: Set<RelayErrorCode> = [
        .invalidToken, .untrustedKey, .tokenExpired, .unknownPeer, .quotaExceeded, .allocationExpired,
        .released, .adminTerminated, .revoked, .wrongAudience, .allocationEnded,
    ]

    public let configuration: Configuration
    public private(set) var state: State = .closed
    /// Datagrams dropped from the full queue while not allocated.
    public private(set) var droppedWhileAway: UInt64 = 0
    /// Consecutive failed attempts (for `maxAttempts`).
    public private(set) var failedAttempts = 0
    /// Reconnections since the last allocation (the `attempt` of `reconnecting`).
    private var reconnections = 0

    private var random: @Sendable () -> Double
    private var queue: [[UInt8]] = []
    private var transportIndex = 0
    /// The transport that last got an allocation (the next attempt starts there).
    private var workingTransport: Int?
    private var target: String
    /// Until when a GOAWAY's target is kept; then back to `configuration.relay`.
    private var targetUntil: Duration?
    private var phaseStartedAt: Duration = .zero
    private var allocatedAt: Duration?
    private var lastHeard: Duration = .zero
    private var reconnectAt: Duration?
    /// GOAWAY shutdown: when to move to the next relay (the current one serves until then).
    private var moveAt: Duration?
    private var nextProbeAt: Duration?
    private var lastReason = ""
    private var started = false

    public init(configuration: Configuration, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.configuration = configuration
        self.random = random
        self.target = configuration.relay
    }

    // MARK: Events

    /// Starts the first attempt.
    public mutating func start(now: Duration) -> [Action] {
        guard !started else { return [] }
        started = true
        return connect(transportIndex: workingTransport ?? 0, now: now, reason: "start")
    }

    /// The transport connected (QUIC handshake or TLS done): ALLOCATE goes out.
    public mutating func connected(now: Duration) -> [Action] {
        guard case .connecting = state else { return [] }
        lastHeard = now
        phaseStartedAt = now
        return [.allocate] + change(.allocating, "connected")
    }

    /// The transport could not connect: the next transport, or a failed attempt.
    public mutating func connectFailed(_ reason: String, now: Duration) -> [Action] {
        guard case .connecting = state else { return [] }
        if transportIndex + 1 < configuration.transports.count {
            return connect(transportIndex: transportIndex + 1, now: now, reason: "\(reason); trying the next transport")
        }
        return attemptFailed(reason, now: now)
    }

    /// Any packet from the relay (the dead-path clock starts again).
    public mutating func heard(now: Duration) {
        lastHeard = now
    }

    /// A control frame from the relay.
    public mutating func received(_ frame: ControlFrame, now: Duration) -> [Action] {
        lastHeard = now
        switch frame {
        case .allocated:
            guard case .allocating = state else { return [] }
            allocatedAt = now
            reconnections = 0
            workingTransport = transportIndex
            if configuration.transports[transportIndex] != .quic, let quic = configuration.transports.firstIndex(of: .quic),
               quic < transportIndex {
                nextProbeAt = now + configuration.quicProbeInterval
            } else {
                nextProbeAt = nil
            }
            return []
        case .peer(let peerState):
            guard state.isAllocated || state == .allocating else { return [] }
            let next: State
            switch peerState {
            case .waiting: next = .waiting
            case .paired: next = .paired
            case .peerGone: next = .peerGone
            }
            var actions = change(next, "PEER \(next)")
            actions += queue.map { .sendDatagram($0) }
            queue.removeAll()
            return actions
        case .error(let code, let reason):
            if Self.finalCodes.contains(code) {
                return [.closeConnection] + change(.failed("\(code.name): \(reason)"), "ERROR \(code.name)")
            }
            return lost("ERROR \(code.name): \(reason)", now: now)
        case .goAway(let goAway):
            return follow(goAway, now: now)
        case .quota, .refreshed, .status, .allocate, .refresh, .release:
            return []
        }
    }

    /// The connection ended (closed by the relay, a network error, a timeout).
    public mutating func lost(_ reason: String, now: Duration) -> [Action] {
        switch state {
        case .connecting:
            return connectFailed(reason, now: now)
        case .allocating, .waiting, .paired, .peerGone:
            if let since = allocatedAt, now - since >= configuration.attemptsResetAfter { failedAttempts = 0 }
            let wasAllocated = state.isAllocated
            allocatedAt = nil
            if wasAllocated {
                // A loss after an allocation is not a failed attempt yet: reconnect at once.
                return [.closeConnection] + scheduleReconnect(after: .zero, reason: reason, now: now)
            }
            return [.closeConnection] + attemptFailed(reason, now: now)
        case .reconnecting, .failed, .closed:
            return []
        }
    }

    /// Timers: reconnect due, connect or ALLOCATE taking too long, a silent path, the QUIC probe.
    public mutating func tick(now: Duration) -> [Action] {
        if let until = targetUntil, now >= until, target != configuration.relay {
            target = configuration.relay
            targetUntil = nil
        }
        switch state {
        case .reconnecting:
            guard let at = reconnectAt, now >= at else { return [] }
            reconnectAt = nil
            return connect(transportIndex: workingTransport ?? 0, now: now, reason: lastReason)
        case .connecting:
            guard now - phaseStartedAt >= configuration.connectTimeout else { return [] }
            return connectFailed("no answer within \(configuration.connectTimeout.milliseconds) ms", now: now)
        case .allocating:
            guard now - phaseStartedAt >= configuration.connectTimeout else { return [] }
            return lost("no ALLOCATED within \(configuration.connectTimeout.milliseconds) ms", now: now)
        case .waiting, .paired, .peerGone:
            if let since = allocatedAt, now - since >= configuration.attemptsResetAfter { failedAttempts = 0 }
            if let at = moveAt, now >= at {
                allocatedAt = nil
                return connect(transportIndex: workingTransport ?? 0, now: now, reason: lastReason)
            }
            if now - lastHeard >= configuration.keepaliveInterval * 2 {
                return lost("nothing heard from the relay for \((now - lastHeard).milliseconds) ms", now: now)
            }
            if let at = nextProbeAt, now >= at {
                nextProbeAt = now + configuration.quicProbeInterval
                return [.probe(.quic, address: target)]
            }
            return []
        case .failed, .closed:
            return []
        }
    }

    /// The background QUIC probe answered: move back to QUIC (the new connection's ALLOCATE
    /// replaces the current one at the relay).
    public mutating func probeSucceeded(now: Duration) -> [Action] {
        guard state.isAllocated, let quic = configuration.transports.firstIndex(of: .quic) else { return [] }
        nextProbeAt = nil
        workingTransport = quic
        allocatedAt = nil
        return connect(transportIndex: quic, now: now, reason: "QUIC answers again")
    }

    /// A datagram from the application: out at once when allocated, else queued.
    public mutating func send(_ payload: [UInt8]) -> [Action] {
        if state.isAllocated { return [.sendDatagram(payload)] }
        guard !state.isFinal else { return [] }
        if queue.count >= configuration.queueCapacity {
            queue.removeFirst()
            droppedWhileAway &+= 1
        }
        queue.append(payload)
        return []
    }

    /// The application is done.
    public mutating func close(now: Duration) -> [Action] {
        guard !state.isFinal else { return [] }
        queue.removeAll()
        return [.closeConnection] + change(.closed, "closed by the application")
    }

    /// Datagrams waiting for the next allocation.
    public var queuedCount: Int { queue.count }

    /// Where the next connection goes.
    public var currentTarget: String { target }

    // MARK: Steps

    private mutating func connect(transportIndex index: Int, now: Duration, reason: String) -> [Action] {
        moveAt = nil
        transportIndex = min(max(0, index), configuration.transports.count - 1)
        phaseStartedAt = now
        let transport = configuration.transports[transportIndex]
        return change(.connecting(transport), reason) + [.connect(transport, address: target)]
    }

    private mutating func attemptFailed(_ reason: String, now: Duration) -> [Action] {
        failedAttempts += 1
        if configuration.maxAttempts > 0, failedAttempts >= configuration.maxAttempts {
            return change(.failed("\(failedAttempts) attempts failed; last: \(reason)"), reason)
        }
        let delay = configuration.backoff.delay(attempt: failedAttempts - 1, unit: random())
        return scheduleReconnect(after: delay, reason: reason, now: now)
    }

    private mutating func scheduleReconnect(after delay: Duration, reason: String, now: Duration) -> [Action] {
        reconnectAt = now + delay
        lastReason = reason
        reconnections += 1
        return change(.reconnecting(attempt: reconnections, in: delay), reason)
    }

    /// GOAWAY as DESIGN §4 defines it.
    private mutating func follow(_ goAway: ControlFrame.GoAway, now: Duration) -> [Action] {
        switch goAway.reason {
        case .replaced:
            return [.closeConnection] + change(.closed, "replaced by a newer connection")
        case .redirect, .shutdown:
            if !goAway.alternate.isEmpty { target = goAway.alternate }
            let wait = goAway.reason == .redirect ? Duration.zero : .milliseconds(Int64(goAway.reconnectInMilliseconds))
            targetUntil = now + wait + .milliseconds(Int64(goAway.tryForMilliseconds))
            let why = goAway.reason == .redirect ? "GOAWAY redirect to \(target)" : "GOAWAY shutdown; next: \(target)"
            if goAway.reason == .shutdown, state.isAllocated {
                // The draining relay still forwards: keep using it until the move is due.
                moveAt = now + wait
                lastReason = why
                return []
            }
            allocatedAt = nil
            // Not a failed attempt: the relay asked for it.
            return [.closeConnection] + scheduleReconnect(after: wait, reason: why, now: now)
        }
    }

    private mutating func change(_ next: State, _ reason: String) -> [Action] {
        guard next != state else { return [] }
        state = next
        return [.stateChanged(next, reason: reason)]
    }
}

extension Duration {
    /// Whole milliseconds (for messages).
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
