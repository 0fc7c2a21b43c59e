import NIOCore
import NIOWebSocket

/// Carries a byte stream (yamux) in binary WebSocket messages (DESIGN §9): inbound frames
/// become `ByteBuffer`s in order, outbound bytes leave as one binary message per flush (split
/// at 256 KiB). It answers pings, pings on its own when asked to, ends an idle or silent link,
/// and closes with a code: 1000 for a graceful end (a `close` from the stream's side), 1009 for
/// a message over 1 MiB, 1003 for text, 1002 for anything malformed. After sending a close for
/// an error it reads and discards for up to 1 s so that the close frame arrives before the
/// connection does.
public final class WebSocketStreamHandler: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: confined to the channel's event loop.
    public typealias InboundIn = WebSocketFrame
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = WebSocketFrame

    /// How the handler behaves.
    public struct Configuration: Sendable {
        /// Our side: a client masks its frames and checks the server's are unmasked.
        public var isClient: Bool
        /// Send a ping this often (clients: 30 s).
        public var pingInterval: TimeAmount?
        /// Count the link dead after this long without any frame (clients: 45 s).
        public var deadAfter: TimeAmount?
        /// How long to keep reading after our close frame before closing the connection.
        public var closeLinger: TimeAmount = .seconds(1)
        /// The largest frame written.
        public var maximumOutboundFrame = 256 * 1024

        public init(isClient: Bool, pingInterval: TimeAmount? = nil, deadAfter: TimeAmount? = nil) {
            self.isClient = isClient
            self.pingInterval = pingInterval
            self.deadAfter = deadAfter
        }

        /// A client's defaults (DESIGN §9): ping every 30 s, dead after 45 s of silence.
        public static let client = Configuration(isClient: true, pingInterval: .seconds(30), deadAfter: .seconds(45))
        /// A server's: answer pings; a client silent for 90 s (three of its pings) is gone.
        public static let server = Configuration(isClient: false, pingInterval: nil, deadAfter: .seconds(90))
    }

    /// How a WebSocket ended, for logs.
    public struct Ending: Sendable, CustomStringConvertible {
        public var code: WebSocketErrorCode?
        public var reason: String
        /// The peer sent the close frame (or vanished).
        public var byPeer: Bool
        public var description: String {
            "\(byPeer ? "peer" : "local") close \(code.map { "\(UInt16(webSocketErrorCode: $0))" } ?? "without code")\(reason.isEmpty ? "" : ": \(reason)")"
        }
    }

    private enum State {
        case open
        /// Our close frame went out; waiting for the peer's, discarding data.
        case closing
        case closed
    }

    private let configuration: Configuration
    private var rules: WebSocketMessageRules
    private var state = State.open
    private var pending: ByteBuffer?
    private var pendingPromises: [EventLoopPromise<Void>] = []
    private var lastHeard = NIODeadline.now()
    private var heartbeat: RepeatedTask?
    private var lingerTimer: Scheduled<Void>?
    private var ending: Ending?
    private let onEnd: @Sendable (Ending) -> Void

    /// - Parameter onEnd: Called once, on the loop, when the WebSocket ends (for logs).
    public init(configuration: Configuration, onEnd: @escaping @Sendable (Ending) -> Void = { _ in }) {
        self.configuration = configuration
        self.rules = WebSocketMessageRules(frameSender: configuration.isClient ? .server : .client)
        self.onEnd = onEnd
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        lastHeard = .now()
        let period = [configuration.pingInterval, configuration.deadAfter.map { .nanoseconds($0.nanoseconds / 3) }].compactMap { $0 }.min()
        guard let period else { return }
        let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        var sincePing = TimeAmount.zero
        heartbeat = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { [self] _ in
            let context = loopContext.value
            guard case .open = state else { return }
            if let deadAfter = configuration.deadAfter, NIODeadline.now() - lastHeard > deadAfter {
                fail(context: context, code: .goingAway, reason: "nothing heard for \(deadAfter.nanoseconds / 1_000_000_000) s", byPeer: true)
                return
            }
            sincePing = sincePing + period
            if let interval = configuration.pingInterval, sincePing >= interval {
                sincePing = .zero
                write(context: context, opcode: .ping, data: context.channel.allocator.buffer(capacity: 0))
                context.flush()
            }
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        heartbeat?.cancel()
        lingerTimer?.cancel()
        failPending(ChannelError.ioOnClosedChannel)
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        lastHeard = .now()
        guard case .open = state else {
            if case .closing = state, frame.opcode == .connectionClose { finish(context: context) }
            return
        }
        switch rules.judge(opcode: frame.opcode, fin: frame.fin, length: frame.length, masked: frame.maskKey != nil,
                           reservedBits: frame.rsv1 || frame.rsv2 || frame.rsv3) {
        case .data:
            let bytes = frame.unmaskedData
            if bytes.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(bytes)) }
        case .control:
            control(frame, context: context)
        case .close(let code, let reason):
            fail(context: context, code: code, reason: reason, byPeer: false)
        }
    }

    private func control(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        switch frame.opcode {
        case .ping:
            write(context: context, opcode: .pong, data: frame.unmaskedData)
            context.flush()
        case .connectionClose:
            var data = frame.unmaskedData
            let code = data.readWebSocketErrorCode()
            let reason = data.readString(length: data.readableBytes) ?? ""
            ending = Ending(code: code, reason: reason, byPeer: true)
            // Echo the code (RFC 6455 §5.5.1), then close.
            var answer = context.channel.allocator.buffer(capacity: 2)
            if let code { answer.write(webSocketErrorCode: code) }
            state = .closing
            let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            write(context: context, opcode: .connectionClose, data: answer).whenComplete { [self] _ in
                self.finish(context: loopContext.value)
            }
            context.flush()
        default:
            break  // pong: counted as heard above
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard case .open = state else { return }  // discarding: the decoder's later complaints too
        switch error {
        case NIOWebSocketError.invalidFrameLength:
            fail(context: context, code: .messageTooLarge, reason: "frame over \(WebSocketMessageRules.maximumMessageBytes) bytes", byPeer: false)
        case is NIOWebSocketError:
            fail(context: context, code: .protocolError, reason: "malformed frame", byPeer: false)
        default:
            ending = ending ?? Ending(code: nil, reason: "\(error)", byPeer: true)
            context.close(promise: nil)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        state = .closed
        heartbeat?.cancel()
        lingerTimer?.cancel()
        failPending(ChannelError.ioOnClosedChannel)
        onEnd(ending ?? Ending(code: nil, reason: "connection closed", byPeer: true))
        context.fireChannelInactive()
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .open = state else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        var bytes = unwrapOutboundIn(data)
        if pending == nil {
            pending = bytes
        } else {
            pending?.writeBuffer(&bytes)
        }
        if let promise { pendingPromises.append(promise) }
    }

    public func flush(context: ChannelHandlerContext) {
        guard case .open = state, var bytes = pending else {
            context.flush()
            return
        }
        pending = nil
        let promises = pendingPromises
        pendingPromises = []
        var last: EventLoopFuture<Void>?
        while bytes.readableBytes > 0 {
            let size = min(bytes.readableBytes, configuration.maximumOutboundFrame)
            guard let chunk = bytes.readSlice(length: size) else { break }
            last = write(context: context, opcode: .binary, data: chunk)
        }
        if let last {
            for promise in promises { last.cascade(to: promise) }
        } else {
            for promise in promises { promise.succeed(()) }
        }
        context.flush()
    }

    /// The stream's side closes: a graceful end, close code 1000 first.
    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard case .open = state, mode == .all else {
            context.close(mode: mode, promise: promise)
            return
        }
        flush(context: context)
        ending = Ending(code: .normalClosure, reason: "", byPeer: false)
        state = .closing
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: .normalClosure)
        write(context: context, opcode: .connectionClose, data: data)
        context.flush()
        lingerTimer = context.eventLoop.scheduleTask(in: configuration.closeLinger) { [self, loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)] in
            self.finish(context: loopContext.value)
        }
        promise?.succeed(())
    }

    // MARK: Steps

    @discardableResult
    private func write(context: ChannelHandlerContext, opcode: WebSocketOpcode, data: ByteBuffer) -> EventLoopFuture<Void> {
        let frame = WebSocketFrame(fin: true, opcode: opcode, maskKey: configuration.isClient ? .random() : nil, data: data)
        return context.write(wrapOutboundOut(frame))
    }

    /// Sends a close frame with `code`, then discards what arrives for up to the linger.
    private func fail(context: ChannelHandlerContext, code: WebSocketErrorCode, reason: String, byPeer: Bool) {
        guard case .open = state else { return }
        state = .closing
        ending = Ending(code: code, reason: reason, byPeer: byPeer)
        failPending(ChannelError.ioOnClosedChannel)
        var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.write(webSocketErrorCode: code)
        data.writeString(String(reason.utf8.prefix(120)) ?? "")
        write(context: context, opcode: .connectionClose, data: data)
        context.flush()
        lingerTimer = context.eventLoop.scheduleTask(in: configuration.closeLinger) { [self, loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)] in
            self.finish(context: loopContext.value)
        }
    }

    private func finish(context: ChannelHandlerContext) {
        guard case .closing = state else { return }
        state = .closed
        lingerTimer?.cancel()
        context.close(promise: nil)
    }

    private func failPending(_ error: any Error) {
        pending = nil
        let promises = pendingPromises
        pendingPromises = []
        for promise in promises { promise.fail(error) }
    }
}
