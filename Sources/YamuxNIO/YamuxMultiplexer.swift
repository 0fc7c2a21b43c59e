import NIOCore
import Yamux

/// Runs a ``YamuxSession`` on a NIO channel (TCP or TLS) and gives each stream its own
/// ``YamuxStreamChannel``.
///
/// Backpressure works both ways without unbounded buffers:
/// - inbound: a stream's data counts against the peer's window until its reader calls
///   ``YamuxStreamChannel/consumed(_:)``; a slow reader stops the peer's writer;
/// - outbound: a write is framed only while the peer's window has room and the connection
///   is writable; its future completes then, so a writer that waits for it is paced;
/// - answers: frames the session must send on its own (ping answers, RSTs, window updates)
///   are bounded by reading: while the connection is not writable (its outbound backlog is
///   over the channel's high-water mark) the handler holds `read()`, so a peer that never
///   reads cannot make us queue answers without bound. Frames that cost work without data
///   are also charged to the session's control-frame budget (``YamuxConfiguration``).
///
/// Add it as the last handler of the connection's pipeline. It is bound to that channel's
/// event loop; the public methods hop there.
public final class YamuxMultiplexer: ChannelDuplexHandler, @unchecked Sendable {
    // @unchecked Sendable: state is confined to the channel's event loop.
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Called on the loop for every stream the peer opens, before its first data event.
    /// Return `false` to refuse the stream (it is reset).
    public typealias InboundStreamInitializer = @Sendable (YamuxStreamChannel) -> Bool

    /// The event loop the session runs on.
    public let eventLoop: any EventLoop
    private var session: YamuxSession
    private var context: ChannelHandlerContext?
    private var streams: [UInt32: YamuxStreamChannel] = [:]
    private let inboundStreamInitializer: InboundStreamInitializer
    private var pingPromises: [UInt32: EventLoopPromise<Duration>] = [:]
    private var keepaliveTimer: Scheduled<Void>?
    private var keepaliveDeadline: ContinuousClock.Instant?
    private var needsFlush = false
    private var isProcessing = false
    /// A `read()` held back while the connection was not writable.
    private var readHeld = false
    private let closedPromise: EventLoopPromise<YamuxSessionCloseReason>
    private var goAwayHandler: (@Sendable (YamuxGoAwayCode) -> Void)?

    /// Creates the handler for a connection on `eventLoop` (the channel's loop).
    /// - Parameters:
    ///   - role: `.client` opens odd stream ids, `.server` even ones.
    ///   - configuration: Windows, limits and keepalive.
    ///   - eventLoop: The channel's event loop.
    ///   - inboundStream: Decides about each stream the peer opens.
    public init(
        role: YamuxRole, configuration: YamuxConfiguration = YamuxConfiguration(), eventLoop: any EventLoop,
        inboundStream: @escaping InboundStreamInitializer
    ) {
        self.eventLoop = eventLoop
        self.session = YamuxSession(role: role, configuration: configuration, now: .now)
        self.inboundStreamInitializer = inboundStream
        self.closedPromise = eventLoop.makePromise()
    }

    /// Succeeds with the reason when the session ends (the connection is then closed).
    public var sessionClosed: EventLoopFuture<YamuxSessionCloseReason> { closedPromise.futureResult }

    /// Sets what to do when the peer sends GoAway(normal) (no new streams; open ones go on).
    public func onGoAway(_ handler: @escaping @Sendable (YamuxGoAwayCode) -> Void) {
        onLoop { self.goAwayHandler = handler }
    }

    // MARK: Application API

    /// Opens a stream. Data may be written at once.
    public func openStream() -> EventLoopFuture<YamuxStreamChannel> {
        eventLoop.submit { () throws -> YamuxStreamChannel in
            guard self.context != nil else { throw YamuxError.sessionClosed() }
            let id = try self.session.openStream()
            let stream = YamuxStreamChannel(id: id, eventLoop: self.eventLoop, multiplexer: self)
            self.streams[id] = stream
            self.process()
            return stream
        }
    }

    /// Pings the peer; succeeds with the round-trip time.
    public func ping() -> EventLoopFuture<Duration> {
        eventLoop.flatSubmit {
            do {
                let opaque = try self.session.ping(now: .now)
                let promise = self.eventLoop.makePromise(of: Duration.self)
                self.pingPromises[opaque] = promise
                self.process()
                return promise.futureResult
            } catch {
                return self.eventLoop.makeFailedFuture(error)
            }
        }
    }

    /// GoAway(normal): the peer may open no more streams; open streams go on.
    public func goAway() {
        onLoop {
            self.session.goAway(.normal)
            self.process()
        }
    }

    /// Ends the session now: GoAway, every stream reset, connection closed.
    public func close() {
        onLoop {
            self.session.close()
            self.process()
        }
    }

    /// The number of open streams.
    public var openStreamCount: EventLoopFuture<Int> {
        eventLoop.submit { self.streams.count }
    }

    // MARK: ChannelHandler

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        process()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        session.transportClosed()
        process()
        self.context = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        session.receive(unwrapInboundIn(data), now: .now)
        process()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        session.transportClosed()
        process()
        context.fireChannelInactive()
    }

    public func read(context: ChannelHandlerContext) {
        // After the session ended nothing read can matter: a TLS layer below waiting for the
        // peer's close_notify would otherwise go on reading and decrypting a flood.
        guard session.isActive else { return }
        if context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, readHeld {
            readHeld = false
            context.read()
        }
        if context.channel.isWritable {
            for id in streams.keys.sorted() {
                if let stream = streams[id] { flushPendingWrites(of: stream) }
            }
        }
        context.fireChannelWritabilityChanged()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        session.transportClosed()
        process()
        context.close(promise: nil)
    }

    // MARK: Stream hooks (on the loop)

    func flushPendingWrites(of stream: YamuxStreamChannel) {
        guard let context else { return }
        while context.channel.isWritable, !stream.pendingWrites.isEmpty {
            var first = stream.pendingWrites[0]
            let taken: Int
            do {
                taken = try session.write(streamID: stream.id, first.bytes)
            } catch {
                for pending in stream.pendingWrites { pending.promise?.fail(error) }
                stream.pendingWrites.removeAll()
                break
            }
            if taken == first.bytes.readableBytes {
                stream.pendingWrites.removeFirst()
                first.promise?.succeed(())
            } else {
                first.bytes.moveReaderIndex(forwardBy: taken)
                stream.pendingWrites[0] = first
                break  // window full: `.windowOpened` resumes
            }
        }
        if stream.finRequested, stream.pendingWrites.isEmpty, streams[stream.id] != nil {
            stream.finRequested = false
            try? session.closeWrite(streamID: stream.id)
        }
        process()
    }

    func resetStream(_ stream: YamuxStreamChannel) {
        session.reset(streamID: stream.id)
        process()
    }

    func consumed(_ count: Int, on stream: YamuxStreamChannel) {
        session.consumed(streamID: stream.id, count: count)
        process()
    }

    // MARK: Carrying out the session's actions

    /// Drains the session's actions; re-entrant calls (from event handlers) are folded in.
    private func process() {
        guard !isProcessing else { return }
        isProcessing = true
        defer { isProcessing = false }
        while let action = session.nextAction() {
            handle(action)
        }
        if needsFlush, let context {
            needsFlush = false
            context.flush()
        }
        armKeepalive()
    }

    private func handle(_ action: YamuxSessionAction) {
        switch action {
        case .writeFrame(let frame):
            guard let context else { return }
            var header = context.channel.allocator.buffer(capacity: YamuxFrameHeader.encodedLength)
            header.writeYamuxHeader(frame.header)
            context.write(wrapOutboundOut(header), promise: nil)
            if frame.payload.readableBytes > 0 {
                context.write(wrapOutboundOut(frame.payload), promise: nil)
            }
            needsFlush = true
        case .streamOpened(let id):
            let stream = YamuxStreamChannel(id: id, eventLoop: eventLoop, multiplexer: self)
            streams[id] = stream
            if inboundStreamInitializer(stream) {
                try? session.acceptStream(id)
            } else {
                streams[id] = nil
                session.refuse(streamID: id, now: .now)
                // Finish the refused stream's object too: its close promise must complete.
                stream.deliver(.reset(.local))
            }
        case .streamData(let id, let bytes):
            streams[id]?.deliver(.data(bytes))
        case .streamHalfClosed(let id):
            streams[id]?.deliver(.endOfInput)
        case .streamClosed(let id):
            streams.removeValue(forKey: id)?.deliver(.closed)
        case .streamReset(let id, let reason):
            streams.removeValue(forKey: id)?.deliver(.reset(reason))
        case .windowOpened(let id):
            if let stream = streams[id] { flushPendingWrites(of: stream) }
        case .pingRTT(let opaque, let rtt):
            pingPromises.removeValue(forKey: opaque)?.succeed(rtt)
        case .pingTimedOut(let opaque):
            pingPromises.removeValue(forKey: opaque)?.fail(YamuxError.keepaliveTimeout())
        case .goAwayReceived(let code):
            goAwayHandler?(code)
        case .sessionClosed(let reason):
            for (_, promise) in pingPromises { promise.fail(YamuxError.sessionClosed()) }
            pingPromises.removeAll()
            keepaliveTimer?.cancel()
            keepaliveTimer = nil
            if let context {
                context.flush()
                needsFlush = false
                context.close(promise: nil)
            }
            closedPromise.succeed(reason)
        }
    }

    private func armKeepalive() {
        guard let deadline = session.nextDeadline else {
            keepaliveTimer?.cancel()
            keepaliveTimer = nil
            keepaliveDeadline = nil
            return
        }
        if let current = keepaliveDeadline, current <= deadline, keepaliveTimer != nil { return }
        keepaliveTimer?.cancel()
        keepaliveDeadline = deadline
        let delay = ContinuousClock.now.duration(to: deadline)
        let nanoseconds = max(0, delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)
        keepaliveTimer = eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
            self.keepaliveTimer = nil
            self.keepaliveDeadline = nil
            self.session.tick(now: .now)
            self.process()
        }
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }
}
