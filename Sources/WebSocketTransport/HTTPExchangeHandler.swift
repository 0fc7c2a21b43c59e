import NIOCore
import NIOHTTP1

/// A refused `CONNECT` or WebSocket upgrade: the status line and the start of the body, so
/// the user sees what the proxy or the server said (DESIGN §9).
public struct HTTPExchangeRefusal: Error, CustomStringConvertible, Sendable {
    /// `proxy CONNECT` or `WebSocket upgrade`.
    public var stage: String
    /// E.g. `HTTP/1.1 403 Forbidden`; empty when no answer came.
    public var statusLine: String
    /// The first bytes of the answer's body (printable characters only).
    public var body: String
    /// Why, when it was not an HTTP answer (timeout, closed, malformed).
    public var problem: String?

    public var description: String {
        var text = "\(stage) failed"
        if !statusLine.isEmpty { text += ": \(statusLine)" }
        if let problem { text += ": \(problem)" }
        if !body.isEmpty { text += " — \(body)" }
        return text
    }
}

/// Client side of one HTTP/1.1 exchange that switches the connection to something else:
/// `CONNECT` through a proxy, or a WebSocket upgrade. Sends `request` once added to an
/// active channel and succeeds with the response head when its status is `expected` and
/// `accept` finds no problem; otherwise it collects up to 512 bytes of the body and fails
/// with ``HTTPExchangeRefusal``.
/// The caller then removes the HTTP handlers (the decoder forwards any bytes after the head).
final class HTTPExchangeHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: confined to the channel's event loop.
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let stage: String
    private let request: HTTPRequestHead
    private let expected: @Sendable (UInt) -> Bool
    private let accept: @Sendable (HTTPResponseHead) -> String?
    private let promise: EventLoopPromise<HTTPResponseHead>
    private let timeout: TimeAmount
    private var refused: (statusLine: String, problem: String)?
    private var accepted: HTTPResponseHead?
    /// The raw answer's first bytes (set by the dialer, which puts the tap before the decoder).
    var tap: RawResponseTap?
    private var body: [UInt8] = []
    private var timer: Scheduled<Void>?
    private var done = false

    init(stage: String, request: HTTPRequestHead, timeout: TimeAmount, promise: EventLoopPromise<HTTPResponseHead>,
         expected: @escaping @Sendable (UInt) -> Bool, accept: @escaping @Sendable (HTTPResponseHead) -> String? = { _ in nil }) {
        self.stage = stage
        self.expected = expected
        self.request = request
        self.timeout = timeout
        self.promise = promise
        self.accept = accept
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) { [self] in
            self.fail(context: loopContext.value, problem: "no answer within \(timeout.nanoseconds / 1_000_000_000) s")
        }
        context.write(wrapOutboundOut(.head(request)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        if !done {
            done = true
            promise.fail(HTTPExchangeRefusal(stage: stage, statusLine: "", body: "", problem: "cancelled"))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            let statusLine = "HTTP/\(head.version.major).\(head.version.minor) \(head.status.code) \(head.status.reasonPhrase)"
            if !expected(head.status.code) {
                refused = (statusLine, "")
            } else if let problem = accept(head) {
                refused = (statusLine, problem)
            } else {
                accepted = head
            }
        case .body(let buffer):
            if refused != nil, body.count < 512 { body += buffer.readableBytesView.prefix(512 - body.count) }
        case .end:
            if let refused {
                fail(context: context, statusLine: refused.statusLine, problem: refused.problem)
            } else if let accepted {
                // The decoder delivered the whole answer: the caller may now change the pipeline.
                done = true
                timer?.cancel()
                promise.succeed(accepted)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let refused {
            fail(context: context, statusLine: refused.statusLine, problem: refused.problem)
        } else {
            fail(context: context, problem: "the connection closed before an answer")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, statusLine: refused?.statusLine ?? "", problem: refused?.problem ?? "not an HTTP answer (\(error))")
    }

    private func fail(context: ChannelHandlerContext, statusLine: String = "", problem: String) {
        guard !done else { return }
        done = true
        timer?.cancel()
        // NIO's decoder ends HTTP at any answer to CONNECT and keeps a refusal's body to
        // itself: take it from the raw bytes then.
        if body.isEmpty, let raw = tap?.bytes, let end = raw.firstRange(of: [13, 10, 13, 10]) {
            body = Array(raw[end.upperBound...].prefix(512))
        }
        let text = String(decoding: body, as: UTF8.self).filter { !$0.isNewline && ($0.asciiValue.map { $0 >= 0x20 } ?? true) }
        promise.fail(HTTPExchangeRefusal(stage: stage, statusLine: statusLine, body: text, problem: problem.isEmpty ? nil : problem))
        context.close(promise: nil)
    }
}


/// Keeps a copy of the first 4 KiB that arrive, passing everything on; an answer that runs
/// past 64 KiB before the exchange ends (a hostile proxy or server) closes the connection.
final class RawResponseTap: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: confined to the channel's event loop.
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let answerLimit = 64 * 1024
    private(set) var bytes: [UInt8] = []
    private var seen = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if bytes.count < 4096 { bytes += buffer.readableBytesView.prefix(4096 - bytes.count) }
        seen += buffer.readableBytes
        guard seen <= Self.answerLimit else {
            context.fireErrorCaught(HTTPExchangeRefusal(stage: "answer", statusLine: "", body: "", problem: "answer over 64 KiB"))
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}
