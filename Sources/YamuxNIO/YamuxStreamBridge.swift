import NIOCore

/// Copies bytes both ways between a TCP channel and a ``YamuxStreamChannel``, with
/// backpressure: the TCP side is read only when the stream took the previous bytes, and
/// the stream's data is acknowledged only once the TCP socket took it.
///
/// Half-closes are carried across (TCP EOF → FIN, FIN → TCP shutdown of the write side);
/// when both directions are done, or either side resets or fails, both are closed.
/// The TCP channel must have `autoRead` off and `allowRemoteHalfClosure` on.
public final class YamuxStreamBridge: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked Sendable: state is confined to the TCP channel's event loop; stream events
    // are hopped there.
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// What the bridge moved, reported once when it ends.
    public struct Summary: Sendable {
        /// Bytes read from the TCP side and written to the stream.
        public var bytesToStream: Int = 0
        /// Bytes read from the stream and written to the TCP side.
        public var bytesFromStream: Int = 0
        /// Why it ended (`"closed"`, `"reset"`, or an error).
        public var ending: String = "closed"
    }

    private let stream: YamuxStreamChannel
    private var context: ChannelHandlerContext?
    private var summary = Summary()
    private var writesInFlight = 0
    private var readPending = false
    private var tcpInputClosed = false
    private var streamInputClosed = false
    private var streamOver = false
    private var tcpOutputShut = false
    private var tcpWritesInFlight = 0
    private var finished = false
    private let onFinish: @Sendable (Summary) -> Void

    /// - Parameters:
    ///   - stream: The yamux stream to bridge.
    ///   - onFinish: Called once, on the TCP channel's loop, when both sides are closed.
    public init(stream: YamuxStreamChannel, onFinish: @escaping @Sendable (Summary) -> Void) {
        self.stream = stream
        self.onFinish = onFinish
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loop = context.eventLoop
        stream.setEventHandler { [self] event in
            if loop.inEventLoop {
                self.streamEvent(event)
            } else {
                loop.execute { self.streamEvent(event) }
            }
        }
        if context.channel.isActive { requestRead() }
    }

    public func channelActive(context: ChannelHandlerContext) {
        requestRead()
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        summary.bytesToStream += bytes.readableBytes
        writesInFlight += 1
        stream.write(bytes).hop(to: context.eventLoop).whenComplete { [self] result in
            self.writesInFlight -= 1
            switch result {
            case .success:
                self.requestRead()
            case .failure:
                self.finish(ending: "stream closed while writing")
                self.context?.close(promise: nil)
            }
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        readPending = false
        requestRead()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            tcpInputClosed = true
            stream.closeWrite()
            closeIfDone()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if !finished, !(tcpInputClosed && streamInputClosed) {
            // The TCP side went away. After either side's FIN that is the usual end of a
            // connection (FIN goes on); with both directions still open it is an abort (RST).
            if tcpInputClosed || streamInputClosed { stream.closeWrite() } else { stream.reset() }
        }
        finish(ending: summary.ending)
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        stream.reset()
        finish(ending: "\(error)")
        context.close(promise: nil)
    }

    private func requestRead() {
        guard let context, !finished, !tcpInputClosed, writesInFlight == 0, !readPending else { return }
        readPending = true
        context.read()
    }

    private func streamEvent(_ event: YamuxStreamEvent) {
        guard let context, !finished else { return }
        switch event {
        case .data(let bytes):
            let count = bytes.readableBytes
            summary.bytesFromStream += count
            tcpWritesInFlight += 1
            let stream = self.stream
            context.writeAndFlush(wrapOutboundOut(bytes)).whenComplete { [self] result in
                self.tcpWritesInFlight -= 1
                if case .success = result { stream.consumed(count) }
                self.closeIfDone()
            }
        case .endOfInput:
            streamInputClosed = true
            closeIfDone()
        case .closed:
            streamInputClosed = true
            streamOver = true
            closeIfDone()
        case .reset(let reason):
            finish(ending: "reset (\(reason))")
            context.close(promise: nil)
        }
    }

    /// Once everything from the stream reached the socket: shuts the TCP write side after
    /// the peer's FIN, and closes the channel when both directions are done.
    private func closeIfDone() {
        guard let context, !finished, tcpWritesInFlight == 0 else { return }
        if streamInputClosed, !tcpOutputShut, !streamOver || !tcpInputClosed {
            tcpOutputShut = true
            context.close(mode: .output).whenFailure { _ in context.close(promise: nil) }
        }
        if streamOver || (tcpInputClosed && streamInputClosed) {
            finish(ending: "closed")
            context.close(promise: nil)
        }
    }

    private func finish(ending: String) {
        guard !finished else { return }
        finished = true
        summary.ending = ending
        onFinish(summary)
    }
}
