import Logging
import NIOCore

/// Tells a WebSocket upgrade from a raw byte stream on a listener that serves both (DESIGN
/// §9): a connection whose first four bytes are `GET ` is HTTP and gets the server handshake
/// of ``WebSocketServerHandshake``; anything else is the raw stream. Either way `streamReady`
/// adds the stream's user (yamux) to the pipeline. Within `timeout` the first bytes must come,
/// or the connection is closed.
public final class WebSocketSniffGate: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: confined to the channel's event loop.
    public typealias InboundIn = ByteBuffer

    /// What the gate chose.
    public enum Choice: Sendable { case raw, websocket }

    private let path: String
    private let timeout: TimeAmount
    private let logger: Logger
    private let streamReady: (ChannelPipeline.SynchronousOperations, Choice) throws -> Void
    private var sniffed: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var decided = false

    /// - Parameters:
    ///   - path: The upgrade's path.
    ///   - logger: For the upgrade's outcome and the WebSocket's end (with `peer` metadata).
    ///   - streamReady: Adds the stream's user; called on the loop, once.
    public init(path: String, timeout: TimeAmount = .seconds(10), logger: Logger,
                streamReady: @escaping (ChannelPipeline.SynchronousOperations, Choice) throws -> Void) {
        self.path = path
        self.timeout = timeout
        self.logger = logger
        self.streamReady = streamReady
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !decided else {
            context.fireChannelRead(data)
            return
        }
        var bytes = unwrapInboundIn(data)
        if sniffed == nil { sniffed = bytes } else { sniffed?.writeBuffer(&bytes) }
        guard let first = sniffed, first.readableBytes >= 4 else { return }
        choose(first.getString(at: first.readerIndex, length: 4) == "GET " ? .websocket : .raw, context: context)
    }

    private func choose(_ choice: Choice, context: ChannelHandlerContext) {
        decided = true
        timer?.cancel()
        let pipeline = context.pipeline.syncOperations
        do {
            switch choice {
            case .raw:
                try streamReady(pipeline, .raw)
            case .websocket:
                try WebSocketServerHandshake.installLogged(on: pipeline, path: path, logger: logger) { pipeline in
                    try self.streamReady(pipeline, .websocket)
                }
            }
        } catch {
            logger.info("connection set-up failed", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        // Bytes read while sniffing go to the chosen handlers, then the gate leaves.
        if let early = sniffed {
            sniffed = nil
            context.fireChannelRead(NIOAny(early))
        }
        pipeline.removeHandler(context: context, promise: nil)
    }
}

extension WebSocketServerHandshake {
    /// ``install(on:path:subprotocol:streamConfiguration:onEnd:outcome:streamReady:)`` with
    /// the lifecycle log lines: `websocket upgraded`, `websocket upgrade refused` (status,
    /// reason), `websocket closed` (who, code, reason).
    public static func installLogged(
        on pipeline: ChannelPipeline.SynchronousOperations, path: String, logger: Logger,
        streamReady: @escaping (ChannelPipeline.SynchronousOperations) throws -> Void
    ) throws {
        try install(
            on: pipeline, path: path,
            onEnd: { ending in logger.info("websocket closed", metadata: ["close": "\(ending)"]) },
            outcome: { outcome in
                switch outcome {
                case .upgraded:
                    logger.info("websocket upgraded")
                case .refused(let status, let reason):
                    logger.info("websocket upgrade refused", metadata: ["status": "\(status)", "reason": "\(reason)"])
                }
            },
            streamReady: streamReady)
    }
}
