import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The server side of the opening handshake (DESIGN §9) as channel handlers: a bounded,
/// timed request head; 404/400/426 (and 431/408) with a short plain-text body and a close;
/// or 101, after which the pipeline carries a byte stream in binary messages.
public enum WebSocketServerHandshake {
    /// The most bytes a request head may take before the upgrade.
    public static let maximumHeadBytes = 16 * 1024
    /// How long a client has to send its request head.
    public static let headTimeout: TimeAmount = .seconds(10)

    /// What happened, for logs and metrics.
    public enum Outcome: Sendable {
        /// Upgraded; the stream handlers are in place.
        case upgraded(path: String)
        /// Refused with this status.
        case refused(status: UInt, reason: String)
    }

    /// Adds the HTTP/1.1 handshake to a pipeline whose bytes are plain HTTP (after TLS, or on
    /// a plain listener). On success it installs the WebSocket codec and a
    /// ``WebSocketStreamHandler`` and calls `streamReady` to add the stream's user (yamux);
    /// `outcome` reports either way.
    public static func install(
        on pipeline: ChannelPipeline.SynchronousOperations, path: String,
        subprotocol: String = WebSocketHandshake.relaySubprotocol,
        streamConfiguration: WebSocketStreamHandler.Configuration = .server,
        onEnd: @escaping @Sendable (WebSocketStreamHandler.Ending) -> Void = { _ in },
        outcome: @escaping @Sendable (Outcome) -> Void,
        streamReady: @escaping (ChannelPipeline.SynchronousOperations) throws -> Void
    ) throws {
        let budget = HeadByteBudget(limit: maximumHeadBytes)
        let encoder = HTTPResponseEncoder()
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
        let handler = UpgradeHandler(
            path: path, subprotocol: subprotocol, outcome: outcome,
            upgrade: { pipeline, handler in
                try pipeline.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: WebSocketMessageRules.maximumMessageBytes)),
                                        position: .after(handler))
                let frameDecoder = try pipeline.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self)
                try pipeline.addHandler(WebSocketFrameEncoder(), position: .after(frameDecoder))
                let stream = WebSocketStreamHandler(configuration: streamConfiguration, onEnd: onEnd)
                try pipeline.addHandler(stream, position: .last)
                try streamReady(pipeline)
                // The HTTP handlers go; the decoder hands any bytes after the head to the frame decoder.
                pipeline.removeHandler(budget, promise: nil)
                pipeline.removeHandler(encoder, promise: nil)
                pipeline.removeHandler(handler, promise: nil)
                pipeline.removeHandler(decoder, promise: nil)
            })
        try pipeline.addHandler(budget)
        try pipeline.addHandler(encoder)
        try pipeline.addHandler(decoder)
        try pipeline.addHandler(handler)
    }

    /// Judges the request head and answers it.
    final class UpgradeHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
        // @unchecked Sendable: confined to the channel's event loop.
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let path: String
        private let subprotocol: String
        private let outcome: @Sendable (Outcome) -> Void
        private let upgrade: (ChannelPipeline.SynchronousOperations, UpgradeHandler) throws -> Void
        private var timer: Scheduled<Void>?
        private var answered = false
        /// The head passed; the upgrade happens at the request's end.
        private var acceptValue: String?

        init(path: String, subprotocol: String, outcome: @escaping @Sendable (Outcome) -> Void,
             upgrade: @escaping (ChannelPipeline.SynchronousOperations, UpgradeHandler) throws -> Void) {
            self.path = path
            self.subprotocol = subprotocol
            self.outcome = outcome
            self.upgrade = upgrade
        }

        func handlerAdded(context: ChannelHandlerContext) {
            let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(in: WebSocketServerHandshake.headTimeout) { [self] in
                self.refuse(context: loopContext.value, status: .requestTimeout, reason: "no complete request head within 10 s")
            }
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            timer?.cancel()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !answered else { return }
            switch unwrapInboundIn(data) {
            case .head(let head):
                timer?.cancel()
                let decision = WebSocketHandshake.evaluate(head, path: path, subprotocol: subprotocol)
                switch decision {
                case .refuse(let status, let reason):
                    refuse(context: context, status: status, reason: reason, extraHeaders: decision.extraHeaders)
                case .upgrade(let accept):
                    acceptValue = accept
                }
            case .body:
                break  // an upgrade request has none; a refused one is closed
            case .end:
                // The decoder has delivered the whole request: only now may the pipeline change.
                guard let accept = acceptValue else { return }
                answered = true
                context.write(wrapOutboundOut(.head(WebSocketHandshake.switchingProtocols(accept: accept, subprotocol: subprotocol))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                do {
                    try upgrade(context.pipeline.syncOperations, self)
                    outcome(.upgraded(path: path))
                } catch {
                    outcome(.refused(status: 500, reason: "upgrade failed: \(error)"))
                    context.close(promise: nil)
                }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // The HTTP decoder's complaints (malformed request) and anything else before the upgrade.
            refuse(context: context, status: .badRequest, reason: "malformed HTTP request")
        }

        private func refuse(context: ChannelHandlerContext, status: HTTPResponseStatus, reason: String,
                            extraHeaders: [(String, String)] = []) {
            guard !answered else { return }
            answered = true
            timer?.cancel()
            let body = reason + "\n"
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            headers.add(name: "Connection", value: "close")
            for (name, value) in extraHeaders { headers.add(name: name, value: value) }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopContext.value.close(promise: nil) }
            outcome(.refused(status: status.code, reason: reason))
        }
    }
}

/// Counts the bytes of a request head; past the limit it answers 431 itself (the HTTP
/// handlers may be mid-parse) and closes. Removed with the HTTP handlers at the upgrade.
final class HeadByteBudget: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: confined to the channel's event loop.
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: Int
    private var seen = 0
    private var exceeded = false

    init(limit: Int) { self.limit = limit }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !exceeded else { return }
        seen += unwrapInboundIn(data).readableBytes
        guard seen <= limit else {
            exceeded = true
            let answer = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + "Content-Length: 25\r\nConnection: close\r\n\r\nrequest head over 16 KiB\n"
            let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: answer))).whenComplete { _ in
                loopContext.value.close(promise: nil)
            }
            return
        }
        context.fireChannelRead(data)
    }
}
