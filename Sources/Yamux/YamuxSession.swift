import NIOCore

/// One yamux session (one per connection), as a pure state machine.
///
/// The owner feeds it bytes from the connection and the application's requests, then
/// drains ``nextAction()`` and carries out each ``YamuxSessionAction``: write frames,
/// deliver stream data and events. It does no I/O and reads no clock: time comes in as
/// `now`, and ``nextDeadline`` says when to call ``tick(now:)`` again.
///
/// Protocol violations end the session with GoAway(protocol error); a stream-level
/// violation (Data after the peer's FIN) resets only that stream. Every call after the
/// session ended is ignored, or throws `.sessionClosed` for calls that return a value.
public struct YamuxSession: Sendable {
    /// Whether the session is running or over.
    enum State: Hashable, Sendable {
        /// Frames flow.
        case active
        /// Terminated; every input is ignored.
        case closed(YamuxSessionCloseReason)
    }

    /// The side of the connection this session is.
    public let role: YamuxRole

    let configuration: YamuxConfiguration
    var state: State = .active
    var parser: YamuxFrameParser
    var streams: [UInt32: YamuxStream] = [:]
    /// Inbound streams announced to the application and not yet acknowledged.
    var pendingAccept: Set<UInt32> = []
    /// The next id we open (a UInt64 so that stepping past the last id cannot overflow).
    var nextLocalStreamID: UInt64
    /// The highest id the peer has opened; its next SYN must be above it.
    var highestRemoteStreamID: UInt32 = 0
    var localGoAwaySent = false
    var remoteGoAwayReceived = false
    var keepalive: YamuxKeepaliveStateMachine
    var controlFrameBudget: YamuxControlFrameBudget
    var outbox: [YamuxSessionAction] = []
    var outboxIndex = 0

    /// Creates a session.
    /// - Parameters:
    ///   - role: Client (opens odd ids) or server (opens even ids).
    ///   - configuration: Limits and timers; out-of-range values are brought into range.
    ///   - now: The current time; the first keepalive ping is due one interval later.
    public init(role: YamuxRole, configuration: YamuxConfiguration = YamuxConfiguration(), now: ContinuousClock.Instant) {
        let configuration = configuration.normalized
        self.role = role
        self.configuration = configuration
        self.parser = YamuxFrameParser(maximumDataLength: configuration.receiveWindow)
        self.nextLocalStreamID = UInt64(role.firstStreamID)
        self.keepalive = YamuxKeepaliveStateMachine(
            interval: configuration.keepAliveInterval,
            timeout: configuration.keepAliveTimeout,
            maximumOutstanding: configuration.maximumOutstandingPings,
            now: now)
        self.controlFrameBudget = YamuxControlFrameBudget(
            burst: configuration.controlFrameBurst, perSecond: configuration.controlFramesPerSecond, now: now)
    }

    // MARK: - State

    /// Whether the session still runs.
    public var isActive: Bool {
        self.state == .active
    }

    /// The number of open streams (including inbound ones not yet accepted).
    public var openStreamCount: Int {
        self.streams.count
    }

    /// Whether the peer sent GoAway(normal): ``openStream()`` is refused.
    public var hasReceivedGoAway: Bool {
        self.remoteGoAwayReceived
    }

    /// When ``tick(now:)`` next has something to do, or `nil` for never.
    public var nextDeadline: ContinuousClock.Instant? {
        guard self.isActive else { return nil }
        return self.keepalive.nextDeadline
    }

    /// How many bytes ``write(streamID:_:)`` would accept on the stream now, or `nil` if the
    /// stream is unknown or not writable.
    public func sendWindow(streamID: UInt32) -> Int? {
        guard self.isActive, let stream = self.streams[streamID], stream.stateMachine.maySendData else {
            return nil
        }
        return Int(clamping: stream.sendWindow.window)
    }

    // MARK: - Actions

    /// The next action to carry out, or `nil` when there is none. Drain after every call.
    public mutating func nextAction() -> YamuxSessionAction? {
        guard self.outboxIndex < self.outbox.count else {
            return nil
        }
        let action = self.outbox[self.outboxIndex]
        self.outboxIndex += 1
        if self.outboxIndex == self.outbox.count {
            self.outbox.removeAll(keepingCapacity: true)
            self.outboxIndex = 0
        }
        return action
    }

    mutating func emit(_ action: YamuxSessionAction) {
        self.outbox.append(action)
    }

    // MARK: - Inbound

    /// Feeds bytes read from the connection and handles every complete frame in them.
    /// - Parameters:
    ///   - bytes: The bytes, in connection order.
    ///   - now: The current time (for ping RTTs).
    public mutating func receive(_ bytes: ByteBuffer, now: ContinuousClock.Instant) {
        guard self.isActive else { return }
        self.parser.append(bytes)
        while self.isActive {
            let frame: YamuxFrame?
            do {
                frame = try self.parser.nextFrame()
            } catch {
                self.apply(.sessionError(.protocolError, error))
                return
            }
            guard let frame else { return }
            self.apply(self.handle(frame: frame, now: now))
        }
    }

    /// Handles one already parsed frame.
    /// - Parameters:
    ///   - frame: The frame.
    ///   - now: The current time (for ping RTTs).
    public mutating func receive(frame: YamuxFrame, now: ContinuousClock.Instant) {
        guard self.isActive else { return }
        self.apply(self.handle(frame: frame, now: now))
    }

    /// The connection closed (EOF or error): every stream is reset and the session ends,
    /// without GoAway.
    public mutating func transportClosed() {
        guard self.isActive else { return }
        self.terminate(.transportClosed, sendingGoAway: nil)
    }

    /// Advances time: sends the keepalive ping when due and ends the session when it went
    /// unanswered. Call it at ``nextDeadline``.
    /// - Parameter now: The current time.
    public mutating func tick(now: ContinuousClock.Instant) {
        guard self.isActive else { return }
        let result = self.keepalive.tick(now: now)
        for opaque in result.timedOutPings {
            self.emit(.pingTimedOut(opaque: opaque))
        }
        if result.keepaliveFailed {
            self.terminate(.error(.keepaliveTimeout()), sendingGoAway: .internalError)
            return
        }
        if let opaque = result.pingToSend {
            self.emit(.writeFrame(.ping(flags: .syn, opaque: opaque)))
        }
    }

    // MARK: - Application requests

    /// Opens a stream: queues its SYN. Data may be written at once, before the ACK.
    /// - Returns: The new stream id.
    /// - Throws: `.sessionClosed`, `.remoteGoAway`, `.tooManyStreams`, `.streamsExhausted`.
    public mutating func openStream() throws(YamuxError) -> UInt32 {
        guard self.isActive else { throw .sessionClosed() }
        guard !self.remoteGoAwayReceived else { throw .remoteGoAway() }
        guard self.streams.count < self.configuration.maximumStreams else {
            throw .tooManyStreams(limit: self.configuration.maximumStreams)
        }
        // As hashicorp/yamux: the last two ids of the space are never used.
        guard self.nextLocalStreamID < UInt64(UInt32.max) - 1,
            let id = UInt32(exactly: self.nextLocalStreamID)
        else {
            throw .streamsExhausted()
        }
        self.nextLocalStreamID += 2
        var stream = YamuxStream(id: id, receiveWindow: self.configuration.receiveWindow)
        stream.stateMachine.sendSYN()
        let delta = stream.receiveWindow.nextIncrement(force: true) ?? 0
        self.streams[id] = stream
        self.emit(.writeFrame(.windowUpdate(streamID: id, flags: .syn, delta: delta)))
        return id
    }

    /// Accepts a stream the peer opened (announced by `.streamOpened`): queues its ACK.
    /// Writing or half-closing an unaccepted stream accepts it implicitly.
    /// - Throws: `.sessionClosed`, `.streamNotFound`.
    public mutating func acceptStream(_ streamID: UInt32) throws(YamuxError) {
        guard self.isActive else { throw .sessionClosed() }
        guard var stream = self.streams[streamID] else { throw .streamNotFound(streamID) }
        self.acknowledgeIfPending(&stream)
        self.streams[streamID] = stream
    }

    /// Sends as much of `bytes` as the stream's send window allows now.
    ///
    /// Keep the rest and write it after `.windowOpened(streamID)`.
    /// - Returns: How many bytes (from the start of `bytes`) were taken.
    /// - Throws: `.sessionClosed`, `.streamNotFound`, `.streamNotWritable`.
    public mutating func write(streamID: UInt32, _ bytes: ByteBuffer) throws(YamuxError) -> Int {
        guard self.isActive else { throw .sessionClosed() }
        guard var stream = self.streams[streamID] else { throw .streamNotFound(streamID) }
        self.acknowledgeIfPending(&stream)
        guard stream.stateMachine.maySendData else {
            self.streams[streamID] = stream
            throw .streamNotWritable(streamID)
        }
        let granted = stream.sendWindow.reserve(bytes.readableBytes)
        self.streams[streamID] = stream
        var remaining = bytes
        var sent = 0
        while sent < granted {
            let chunk = min(granted - sent, self.configuration.maximumOutboundDataFrameLength)
            guard let slice = remaining.readSlice(length: chunk) else {
                throw .impossibleSituation("granted more than readable")
            }
            self.emit(.writeFrame(.data(streamID: streamID, payload: slice)))
            sent += chunk
        }
        return granted
    }

    /// Reports that the application has read `count` bytes of the stream's data, which
    /// may queue a WindowUpdate. Unknown streams are ignored.
    public mutating func consumed(streamID: UInt32, count: Int) {
        guard self.isActive, count > 0, var stream = self.streams[streamID] else { return }
        stream.receiveWindow.consumed(count)
        if !stream.stateMachine.acknowledgementPending, stream.stateMachine.mayReceiveData,
            let delta = stream.receiveWindow.nextIncrement(force: false)
        {
            self.emit(.writeFrame(.windowUpdate(streamID: streamID, delta: delta)))
        }
        self.streams[streamID] = stream
    }

    /// Half-closes the stream: queues FIN; we send no more data. Idempotent.
    /// - Throws: `.sessionClosed`, `.streamNotFound`.
    public mutating func closeWrite(streamID: UInt32) throws(YamuxError) {
        guard self.isActive else { throw .sessionClosed() }
        guard var stream = self.streams[streamID] else { throw .streamNotFound(streamID) }
        self.acknowledgeIfPending(&stream)
        switch stream.stateMachine.sendFIN() {
        case .alreadyClosed:
            self.streams[streamID] = stream
        case .halfClosed:
            self.streams[streamID] = stream
            self.emit(.writeFrame(.windowUpdate(streamID: streamID, flags: .fin)))
        case .closed:
            self.removeStream(streamID)
            self.emit(.writeFrame(.windowUpdate(streamID: streamID, flags: .fin)))
            self.emit(.streamClosed(streamID: streamID))
        }
    }

    /// Resets the stream: queues RST and forgets it. Unknown streams are ignored.
    public mutating func reset(streamID: UInt32) {
        guard self.isActive, self.streams[streamID] != nil else { return }
        self.resetStream(streamID, reason: .local)
    }

    /// Refuses a stream the peer opened (the application does not want it): RST, charged to
    /// the control-frame budget like a SYN the session refused itself, so a peer opening
    /// unwanted streams in a loop is cut off.
    /// - Parameters:
    ///   - streamID: The inbound stream.
    ///   - now: The current time.
    public mutating func refuse(streamID: UInt32, now: ContinuousClock.Instant) {
        guard self.isActive, self.streams[streamID] != nil else { return }
        self.resetStream(streamID, reason: .local)
        if !self.controlFrameBudget.charge(now: now) {
            self.apply(.sessionError(.protocolError, self.controlFrameBudget.exhaustedError))
        }
    }

    /// Sends a ping; its answer is reported as `.pingRTT(opaque, rtt)`.
    /// - Parameter now: The current time.
    /// - Returns: The ping's opaque value.
    /// - Throws: `.sessionClosed`, `.tooManyPings`.
    public mutating func ping(now: ContinuousClock.Instant) throws(YamuxError) -> UInt32 {
        guard self.isActive else { throw .sessionClosed() }
        let opaque = try self.keepalive.sendPing(now: now)
        self.emit(.writeFrame(.ping(flags: .syn, opaque: opaque)))
        return opaque
    }

    /// Sends GoAway.
    ///
    /// With `.normal` the session goes on: inbound SYNs are refused with RST from now on
    /// and open streams may finish (graceful drain). Any other code ends the session.
    public mutating func goAway(_ code: YamuxGoAwayCode) {
        guard self.isActive else { return }
        if code == .normal {
            guard !self.localGoAwaySent else { return }
            self.localGoAwaySent = true
            self.emit(.writeFrame(.goAway(.normal)))
        } else {
            self.terminate(.local(code), sendingGoAway: code)
        }
    }

    /// Ends the session at once: queues GoAway(normal) unless one was sent, resets every
    /// open stream locally and reports `.sessionClosed(.local(.normal))`.
    public mutating func close() {
        guard self.isActive else { return }
        self.terminate(.local(.normal), sendingGoAway: self.localGoAwaySent ? nil : .normal)
    }

    // MARK: - Helpers

    /// Queues the ACK (with any window increment) if the stream's SYN still awaits it.
    mutating func acknowledgeIfPending(_ stream: inout YamuxStream) {
        guard stream.stateMachine.sendACK() else { return }
        self.pendingAccept.remove(stream.id)
        let delta = stream.receiveWindow.nextIncrement(force: true) ?? 0
        self.emit(.writeFrame(.windowUpdate(streamID: stream.id, flags: .ack, delta: delta)))
    }

    mutating func removeStream(_ streamID: UInt32) {
        self.streams.removeValue(forKey: streamID)
        self.pendingAccept.remove(streamID)
    }

    /// Queues RST for the stream, forgets it and reports the reset.
    mutating func resetStream(_ streamID: UInt32, reason: YamuxStreamResetReason) {
        self.removeStream(streamID)
        self.emit(.writeFrame(.windowUpdate(streamID: streamID, flags: .rst)))
        self.emit(.streamReset(streamID: streamID, reason: reason))
    }

    /// Carries out the scope of a frame handler's result.
    mutating func apply(_ result: YamuxStateMachineResult) {
        switch result {
        case .ok:
            return
        case .streamError(let streamID, let error):
            if self.streams[streamID] != nil {
                self.resetStream(streamID, reason: .streamError(error))
            }
        case .sessionError(let code, let error):
            self.terminate(.error(error), sendingGoAway: code)
        }
    }

    /// Ends the session: optional GoAway, a reset for every open stream, then
    /// `.sessionClosed`.
    mutating func terminate(_ reason: YamuxSessionCloseReason, sendingGoAway code: YamuxGoAwayCode?) {
        guard self.isActive else { return }
        if let code {
            self.emit(.writeFrame(.goAway(code)))
        }
        for streamID in self.streams.keys.sorted() {
            self.emit(.streamReset(streamID: streamID, reason: .sessionClosed))
        }
        self.streams.removeAll()
        self.pendingAccept.removeAll()
        self.state = .closed(reason)
        self.emit(.sessionClosed(reason))
    }
}
