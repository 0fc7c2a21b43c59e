import EgressProxy
import Logging
import NIOCore
import YamuxNIO

/// One application connection to the agent: reads the request head, opens a stream with
/// `OPEN`, turns `ERR` into the HTTP status of DESIGN §12 (with `X-Zrc-Proxy-Error`), and on
/// `OK` hands the connection to a ``YamuxStreamBridge`` after sending what must go first.
///
/// The channel has `autoRead` off: the head is read one read at a time, and nothing more is
/// read until the bridge takes over, so a client cannot make us buffer more than one head.
final class AgentConnectionHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: used only on the agent's one event loop (its streams too).
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase {
        case readingHead
        case opening
        case bridged
        case done
    }

    private let agent: EgressProxyAgent
    private var phase = Phase.readingHead
    private var parser = HTTPRequestHeadParser()
    private var reply = ProxyLineBuffer()
    private var leftover: [UInt8] = []
    private var plan: ProxyRequestPlan?
    private var stream: YamuxStreamChannel?
    private var clientInputClosed = false
    private var timer: Scheduled<Void>?
    /// After an error answer: read and drop until the client closes (bounded by a timer).
    private var draining = false
    private let started = ContinuousClock.now

    init(agent: EgressProxyAgent) {
        self.agent = agent
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { context.read() }
        // An application that never finishes its request head is dropped.
        let channel = context.channel
        headTimer = context.eventLoop.scheduleTask(in: TimeAmount(ProxyDefaults.requestHeadTimeout)) { [self] in
            if phase == .readingHead {
                phase = .done
                channel.close(promise: nil)
            }
        }
    }

    private var headTimer: Scheduled<Void>?

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        switch phase {
        case .readingHead:
            switch parser.append(bytes.readableBytesView) {
            case .needMore:
                break
            case .head(let head, let rest):
                leftover = rest
                begin(head, context: context)
            case .invalid(let reason):
                respond(.badRequest, reason, context: context)
            case .tooLarge:
                respond(.badRequest, "request head too large", context: context)
            }
        case .opening:
            // A read that was already under way; one read at most (no further read() is
            // issued while opening).
            leftover.append(contentsOf: bytes.readableBytesView)
        case .bridged, .done:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if phase == .readingHead || draining { context.read() }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            clientInputClosed = true
            if phase == .readingHead || draining {
                phase = .done
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if phase == .opening { stream?.reset() }
        timer?.cancel()
        headTimer?.cancel()
        phase = .done
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if phase == .opening { stream?.reset() }
        phase = .done
        context.close(promise: nil)
    }

    // MARK: Opening

    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        headTimer?.cancel()
        let plan: ProxyRequestPlan
        do {
            plan = try ProxyRequestPlan.plan(head)
        } catch {
            respond(.badRequest, error.reason, context: context)
            return
        }
        self.plan = plan
        guard let tunnel = agent.currentTunnel else {
            respond(.tunnelDown, "no tunnel to the proxy server", context: context)
            return
        }
        phase = .opening
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        tunnel.openStream().hop(to: context.eventLoop).whenComplete { [self] result in
            let context = bound.value
            switch result {
            case .failure:
                respond(.tunnelDown, "the tunnel to the proxy server is closing", context: context)
            case .success(let stream):
                guard phase == .opening else {
                    stream.reset()
                    return
                }
                self.stream = stream
                stream.write(ByteBuffer(string: ProxyLine.open(host: plan.host, port: plan.port)))
                timer = context.eventLoop.scheduleTask(in: TimeAmount(agent.configuration.replyTimeout)) { [self] in
                    if phase == .opening {
                        stream.reset()
                        respond(.timeout, "no answer from the proxy server in time", context: bound.value)
                    }
                }
                let loop = context.eventLoop
                stream.setEventHandler { [self] event in
                    if loop.inEventLoop {
                        streamEvent(event, context: bound.value)
                    } else {
                        loop.execute { self.streamEvent(event, context: bound.value) }
                    }
                }
            }
        }
    }

    private func streamEvent(_ event: YamuxStreamEvent, context: ChannelHandlerContext) {
        guard phase == .opening, let stream else { return }
        switch event {
        case .data(let bytes):
            switch reply.append(bytes.readableBytesView) {
            case .needMore:
                stream.consumed(bytes.readableBytes)
            case .line(let line, let rest):
                stream.consumed(bytes.readableBytes - rest.count)
                answered(ProxyLine.parseAnswer(line), rest: rest, context: context)
            case .tooLong, .finished:
                stream.reset()
                respond(.badAnswer, "the proxy server's answer is too long", context: context)
            }
        case .endOfInput, .closed, .reset:
            stream.reset()
            respond(.badAnswer, "the proxy server ended the stream without an answer", context: context)
        }
    }

    private func answered(_ answer: ProxyLine.Answer, rest: [UInt8], context: ChannelHandlerContext) {
        guard let stream, let plan else { return }
        timer?.cancel()
        switch answer {
        case .ok:
            phase = .bridged
            switch plan.mode {
            case .connect:
                context.write(wrapOutboundOut(ByteBuffer(bytes: ProxyErrorResponse.connectEstablished)), promise: nil)
            case .forward(let head, _):
                stream.write(ByteBuffer(bytes: head))
            }
            if !leftover.isEmpty { stream.write(ByteBuffer(bytes: leftover)) }
            leftover = []
            context.flush()
            let channel = context.channel
            let logger = agent.logger
            let destination = "\(plan.host):\(plan.port)"
            let started = self.started
            let bridge = YamuxStreamBridge(stream: stream) { summary in
                logger.debug("proxied connection closed", metadata: [
                    "zrc.destination": "\(destination)", "bytes_up": "\(summary.bytesToStream)",
                    "bytes_down": "\(summary.bytesFromStream + count(rest))", "duration_ms": "\(milliseconds(since: started))",
                    "ending": "\(summary.ending)",
                ])
            }
            do {
                if case .forward = plan.mode {
                    // Response heads lose their hop-by-hop and Proxy-* headers on the way back.
                    let filter = ResponseHeadFilterHandler()
                    try context.pipeline.syncOperations.addHandler(filter, position: .after(self))
                    try context.pipeline.syncOperations.addHandler(bridge, position: .after(filter))
                } else {
                    try context.pipeline.syncOperations.addHandler(bridge, position: .after(self))
                }
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            } catch {
                stream.reset()
                channel.close(promise: nil)
                return
            }
            // Destination bytes that came with `OK` go first, through the response filter.
            if !rest.isEmpty {
                let count = rest.count
                channel.writeAndFlush(ByteBuffer(bytes: rest)).whenSuccess { stream.consumed(count) }
            }
            if clientInputClosed { stream.closeWrite() }
        case .error(let code, let rawCode, let text):
            stream.closeWrite()
            respond(code ?? .badAnswer, code == nil ? "\(rawCode) \(text)" : text, context: context)
        case .malformed:
            stream.reset()
            respond(.badAnswer, "the proxy server's answer is not OK or ERR", context: context)
        }
    }

    private func respond(_ code: ProxyErrorCode, _ detail: String, context: ChannelHandlerContext) {
        guard phase != .done, phase != .bridged else { return }
        phase = .done
        timer?.cancel()
        agent.logger.debug("request refused", metadata: [
            "zrc.error.code": "\(code.name)", "detail": "\(detail)",
            "zrc.destination": "\(plan.map { "\($0.host):\($0.port)" } ?? "-")",
        ])
        // Half-close after the answer, then drain (and drop) what the client still sends for
        // a moment: closing with unread bytes would reset the connection and could destroy
        // the answer before the client read it.
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: ProxyErrorResponse.bytes(code, detail: detail)))).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
        }
        draining = true
        context.read()
        _ = context.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
    }
}

private func count(_ bytes: [UInt8]) -> Int { bytes.count }
