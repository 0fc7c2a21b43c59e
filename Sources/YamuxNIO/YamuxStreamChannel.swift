import NIOCore
import Yamux

/// What a ``YamuxStreamChannel`` reports to its reader.
public enum YamuxStreamEvent: Sendable {
    /// Bytes from the peer. Call ``YamuxStreamChannel/consumed(_:)`` once they are handled:
    /// until then they count against the peer's window (this is the backpressure).
    case data(ByteBuffer)
    /// The peer half-closed (FIN): no more data will come; writing may go on.
    case endOfInput
    /// The stream is over, cleanly (both sides sent FIN).
    case closed
    /// The stream was reset (by either side, or because the session ended).
    case reset(YamuxStreamResetReason)
}

/// One yamux stream of a ``YamuxMultiplexer``, with its own reader callback and an
/// outbound queue that only drains as the peer's window and the connection allow.
///
/// Every method may be called from any thread; work hops to the multiplexer's event loop.
/// Events are delivered on that loop, in order; those that arrive before a handler is set
/// are kept (they are bounded by the receive window) and delivered when it is set.
public final class YamuxStreamChannel: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is touched only on `eventLoop`; the public
    // methods hop there first.

    /// The stream id (odd: opened by the client side, even: by the server side).
    public let id: UInt32
    /// The multiplexer's event loop, where events are delivered.
    public let eventLoop: any EventLoop

    weak var multiplexer: YamuxMultiplexer?
    private var eventHandler: ((YamuxStreamEvent) -> Void)?
    private var undelivered: [YamuxStreamEvent] = []
    /// Writes not yet taken by the session (window or connection full), oldest first.
    var pendingWrites: [(bytes: ByteBuffer, promise: EventLoopPromise<Void>?)] = []
    /// Half-close requested; FIN goes out once `pendingWrites` is empty.
    var finRequested = false
    private(set) var isFinished = false
    private let closePromise: EventLoopPromise<Void>

    init(id: UInt32, eventLoop: any EventLoop, multiplexer: YamuxMultiplexer) {
        self.id = id
        self.eventLoop = eventLoop
        self.multiplexer = multiplexer
        self.closePromise = eventLoop.makePromise()
    }

    /// Succeeds when the stream is over (closed or reset).
    public var closeFuture: EventLoopFuture<Void> { closePromise.futureResult }

    /// Sets the reader and delivers any event that arrived before it.
    public func setEventHandler(_ handler: @escaping @Sendable (YamuxStreamEvent) -> Void) {
        onLoop {
            self.eventHandler = handler
            let backlog = self.undelivered
            self.undelivered.removeAll()
            for event in backlog { handler(event) }
            if self.isFinished { self.eventHandler = nil }
        }
    }

    /// Queues `bytes`; the future succeeds once the session has framed all of them (the
    /// peer's window had room and the connection was writable). Wait for it before writing
    /// more to keep memory bounded.
    @discardableResult
    public func write(_ bytes: ByteBuffer) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        onLoop {
            guard !self.isFinished, !self.finRequested, let multiplexer = self.multiplexer else {
                promise.fail(YamuxError.streamNotWritable(self.id))
                return
            }
            self.pendingWrites.append((bytes, promise))
            multiplexer.flushPendingWrites(of: self)
        }
        return promise.futureResult
    }

    /// Half-closes: FIN after the queued writes. Reading goes on until the peer's FIN.
    public func closeWrite() {
        onLoop {
            guard !self.isFinished, !self.finRequested else { return }
            self.finRequested = true
            self.multiplexer?.flushPendingWrites(of: self)
        }
    }

    /// Resets the stream (RST): queued writes fail, nothing more is delivered.
    public func reset() {
        onLoop {
            guard !self.isFinished else { return }
            self.multiplexer?.resetStream(self)
        }
    }

    /// Reports that `count` bytes of delivered data were handled, reopening the peer's window.
    public func consumed(_ count: Int) {
        onLoop {
            guard !self.isFinished else { return }
            self.multiplexer?.consumed(count, on: self)
        }
    }

    // MARK: Loop-side

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    func deliver(_ event: YamuxStreamEvent) {
        guard !isFinished else { return }
        switch event {
        case .closed, .reset:
            isFinished = true
            let error: any Error = YamuxError.streamNotWritable(id)
            for pending in pendingWrites { pending.promise?.fail(error) }
            pendingWrites.removeAll()
        case .data, .endOfInput:
            break
        }
        if let eventHandler {
            eventHandler(event)
        } else {
            undelivered.append(event)
        }
        if isFinished {
            // The last event: drop the handler, which often captures its owner (and the owner
            // this stream), so the cycle ends with the stream.
            eventHandler = nil
            closePromise.succeed(())
        }
    }
}
