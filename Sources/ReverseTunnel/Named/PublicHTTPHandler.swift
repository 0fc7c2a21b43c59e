import Logging
import NIOCore
import NIOHTTP1
import YamuxNIO

/// One public HTTP connection of a named-tunnel server (DESIGN §11): reads the first request
/// head (bounded in size and time), routes it by `Host` (or the TLS server name) to a tunnel,
/// and then passes bytes both ways — every request head rewritten with `X-Forwarded-*`,
/// everything else unchanged — with backpressure: the caller is read only when the stream
/// took the previous bytes, and the stream's data is acknowledged only once written here.
///
/// The public channel must have `autoRead` off and `allowRemoteHalfClosure` on.
final class PublicHTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked Sendable: every field is touched only on the channel's event loop; stream
    // events and the stream-open future are hopped there.
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        /// Waiting for the first request head.
        case awaitingFirstHead
        /// The first head is routed; the stream is being opened.
        case opening
        /// Passing bytes.
        case forwarding
        /// Closing or closed: nothing more is read or written.
        case closed
    }

    private let shared: PublicListenerContext
    private let serverName: TunnelName?
    private let scanner: HTTPRequestStreamScanner
    private let observer = HTTPResponseObserver()
    private var context: ChannelHandlerContext?
    private var logger: Logger
    private var clientAddress = "?"
    private var phase = Phase.awaitingFirstHead
    private var tunnelName: TunnelName?
    private var connectionHost: String?
    private var stream: YamuxStreamChannel?
    private var pendingToStream: [ByteBuffer] = []
    private var writesInFlight = 0
    private var readPending = false
    private var streamWritesInFlight = 0
    private var streamEnded = false
    private var callerInputClosed = false
    private var responseLost = false
    /// Requests forwarded whose response has not ended, oldest first.
    private var requests = PublicRequestLedger()
    /// Bytes of the oldest unfinished response already written to the caller.
    private var responseStarted = false
    /// An error to answer once the responses in flight have ended (a later request that
    /// cannot be forwarded).
    private var pendingError: TunnelHTTPError?
    private var pendingErrorHead: HTTPRequestHead?
    private var headTimer: Scheduled<Void>?
    private var bodyTimer: Scheduled<Void>?
    /// When the caller last sent bytes (for the request-body idle timeout).
    private var lastCallerBytes = NIODeadline.uptimeNanoseconds(0)
    private var responseTimer: Scheduled<Void>?

    /// - Parameters:
    ///   - shared: The listener's settings and the server's resolver.
    ///   - serverName: The tunnel a TLS server name selected (HTTPS), if any.
    init(shared: PublicListenerContext, serverName: TunnelName?) {
        self.shared = shared
        self.serverName = serverName
        self.scanner = HTTPRequestStreamScanner(maximumHeadLength: shared.maximumHeadLength)
        self.logger = shared.logger
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        lastCallerBytes = context.eventLoop.now
        // HTTPS channels start with autoRead on (for the SNI and TLS handshake); from here the
        // reads are ours.
        try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        let remote = context.channel.remoteAddress
        clientAddress = remote?.ipAddress ?? "?"
        logger[metadataKey: "public.addr"] = "\(clientAddress):\(remote?.port ?? 0)"
        armHeadTimer()
        if context.channel.isActive { requestRead() }
    }

    func channelActive(context: ChannelHandlerContext) {
        requestRead()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        readPending = false
        guard phase != .closed, pendingError == nil else { return }
        let bytes = unwrapInboundIn(data)
        let events: [HTTPRequestStreamScanner.Event]
        do {
            events = try scanner.feed(bytes)
        } catch {
            fail(error == .headTooLarge ? .headTooLarge : .malformedRequest, head: nil)
            return
        }
        for event in events {
            guard phase != .closed, pendingError == nil else { return }
            switch event {
            case .head(let head): receiveHead(head)
            case .bytes(let body):
                requests.addRequestBytes(body.readableBytes)
                sendToStream(body)
            }
        }
        lastCallerBytes = context.eventLoop.now
        if scanner.isReadingHead, !scanner.isRaw, phase != .closed { armHeadTimer() }
        if !scanner.isReadingHead, !scanner.isRaw, phase != .closed { armBodyTimer() }
        // The response timeout runs from the end of the request (a long upload is not late).
        if scanner.isReadingHead || scanner.isRaw { armResponseTimer() }
        requestRead()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        requestRead()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The caller is done sending: pass the half-close on, keep answering.
            callerInputClosed = true
            if phase == .awaitingFirstHead {
                close()
            } else if let stream, phase == .forwarding {
                stream.closeWrite()
                afterResponseProgress()
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        shutDown()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close()
    }

    // MARK: Requests from the caller

    private func receiveHead(_ head: HTTPRequestHead) {
        headTimer?.cancel()
        headTimer = nil
        let host = head.headers.first(name: "host").map { String($0.trimmingASCIIWhitespace()).lowercased() }
        guard phase == .awaitingFirstHead else {
            guard host == connectionHost else {
                enqueueError(.misdirected, head: head)
                return
            }
            forward(head)
            return
        }
        let name: TunnelName
        switch shared.router.route(host: host) {
        case .missing: return fail(.missingHost, head: head)
        case .malformed: return fail(.malformedRequest, head: head)
        case .badName(let problem): return fail(.badName(problem), head: head)
        case .otherHost: return fail(.unknownTunnel, head: head)
        case .name(let routed): name = routed
        }
        if let serverName, serverName != name { return fail(.misdirected, head: head) }
        tunnelName = name
        connectionHost = host
        logger[metadataKey: "tunnel.name"] = "\(name)"
        switch shared.resolve(name) {
        case .error(let error):
            fail(error, head: head)
        case .stream(let future):
            phase = .opening
            forward(head)
            let loop = context?.eventLoop
            future.hop(to: loop ?? future.eventLoop).whenComplete { [self] result in
                switch result {
                case .success(let stream): self.streamOpened(stream)
                case .failure: self.fail(.streamRefused, head: nil)
                }
            }
        }
    }

    /// Rewrites and passes on a request head; starts its record and the response timer.
    private func forward(_ head: HTTPRequestHead) {
        var rewritten = head
        ForwardedHead.rewrite(&rewritten.headers, clientAddress: clientAddress, proto: shared.proto)
        var buffer = context?.channel.allocator.buffer(capacity: 512) ?? ByteBuffer()
        ForwardedHead.serialize(rewritten, into: &buffer)
        requests.begin(method: head.method.rawValue, path: ForwardedHead.pathWithoutQuery(head.uri), at: .now,
                       headBytes: buffer.readableBytes)
        observer.requestSent(head)
        sendToStream(buffer)
    }

    private func sendToStream(_ bytes: ByteBuffer) {
        switch phase {
        case .opening:
            pendingToStream.append(bytes)
        case .forwarding:
            guard let stream else { return }
            writesInFlight += 1
            let loop = context?.eventLoop
            let future = stream.write(bytes)
            (loop.map { future.hop(to: $0) } ?? future).whenComplete { [self] result in
                self.writesInFlight -= 1
                switch result {
                case .success: self.requestRead()
                case .failure: self.close()
                }
            }
        case .awaitingFirstHead, .closed:
            break
        }
    }

    private func streamOpened(_ stream: YamuxStreamChannel) {
        guard phase == .opening, let context else {
            stream.reset()
            return
        }
        self.stream = stream
        phase = .forwarding
        let loop = context.eventLoop
        stream.setEventHandler { [self] event in
            if loop.inEventLoop {
                self.streamEvent(event)
            } else {
                loop.execute { self.streamEvent(event) }
            }
        }
        let pending = pendingToStream
        pendingToStream.removeAll()
        for bytes in pending { sendToStream(bytes) }
        if callerInputClosed { stream.closeWrite() }
        requestRead()
    }

    /// Beyond this many unanswered pipelined requests the caller is not read.
    static let maximumOutstandingRequests = NamedTunnelDefaults.maximumOutstandingRequests

    private func requestRead() {
        guard let context, !readPending, writesInFlight == 0, pendingError == nil,
              requests.count < Self.maximumOutstandingRequests
        else { return }
        switch phase {
        case .awaitingFirstHead, .forwarding:
            readPending = true
            context.read()
        case .opening, .closed:
            break
        }
    }

    // MARK: Responses from the tunnel

    private func streamEvent(_ event: YamuxStreamEvent) {
        guard let context, phase != .closed else { return }
        switch event {
        case .data(let bytes):
            let count = bytes.readableBytes
            requests.addResponseBytes(count)
            responseStarted = true
            for observed in observer.feed(bytes) {
                switch observed {
                case .head(let status):
                    requests.receivedStatus(status)
                    armResponseTimer(restart: true)
                case .end:
                    finishOldestRequest()
                case .lost:
                    responseLost = true
                    responseTimer?.cancel()
                    responseTimer = nil
                }
            }
            // After an upgrade (or CONNECT) request, once its answer's head was seen the rest is
            // not HTTP: the decoder would only keep it.
            if scanner.isRaw, requests.newestIsAnswered { observer.stop() }
            streamWritesInFlight += 1
            let stream = self.stream
            context.writeAndFlush(wrapOutboundOut(bytes)).whenComplete { [self] result in
                self.streamWritesInFlight -= 1
                switch result {
                case .success:
                    stream?.consumed(count)
                    self.afterResponseProgress()
                case .failure:
                    self.close()
                }
            }
        case .endOfInput, .closed:
            streamEnded = true
            afterResponseProgress()
        case .reset:
            streamEnded = true
            if !requests.isEmpty, !responseStarted {
                fail(.localUnreachable, head: nil)
            } else {
                close()
            }
        }
    }

    private func finishOldestRequest() {
        guard let record = requests.finishOldest() else { return }
        responseStarted = false
        log(record)
        requestRead()  // a connection at the pipelining limit may read again
        if requests.isEmpty, scanner.isReadingHead, !scanner.isRaw {
            // Idle kept-alive connection: the next head has the head timeout to arrive.
            headTimer?.cancel()
            headTimer = nil
            armHeadTimer()
        }
        if !requests.awaitsResponseHead {
            responseTimer?.cancel()
            responseTimer = nil
        }
        if !requests.isEmpty { armResponseTimer(restart: true) }
    }

    /// After response bytes were written, or the stream ended: answers a pending error once
    /// nothing is in flight, and closes once the tunnel side is done.
    private func afterResponseProgress() {
        guard phase != .closed, streamWritesInFlight == 0 else { return }
        if let pendingError, requests.isEmpty || responseLost || streamEnded {
            self.pendingError = nil
            fail(pendingError, head: pendingErrorHead)
            return
        }
        if streamEnded { close() }
        // HTTP (not a bridge): the caller sent its last request and every response is out,
        // so nothing more can be asked or answered, even if the local service keeps its side
        // open.
        if callerInputClosed, requests.isEmpty, !scanner.isRaw, !responseLost { close() }
    }

    // MARK: Errors, timers, closing

    /// Answers a later request that cannot be forwarded once the earlier responses are out.
    private func enqueueError(_ error: TunnelHTTPError, head: HTTPRequestHead?) {
        pendingError = error
        pendingErrorHead = head
        afterResponseProgress()
    }

    /// Writes the server's own answer and closes.
    private func fail(_ error: TunnelHTTPError, head: HTTPRequestHead?) {
        guard let context, phase != .closed else { return }
        if let kind = error.kind { shared.metrics?.countError(kind) }
        if let head { requests.begin(method: head.method.rawValue, path: ForwardedHead.pathWithoutQuery(head.uri), at: .now) }
        // The answer belongs to the newest request; older ones end without a response.
        let response = error.response()
        requests.answerNewest(status: error.status, responseBytes: response.readableBytes, at: .now)
        logger.debug("public request answered by the server", metadata: ["status": "\(error.status)", "reason": "\(error.message)"])
        phase = .closed
        stream?.reset()
        context.writeAndFlush(wrapOutboundOut(response)).whenComplete { _ in context.close(promise: nil) }
        shutDown()
    }

    private func armHeadTimer() {
        guard headTimer == nil, let loop = context?.eventLoop else { return }
        headTimer = loop.scheduleTask(in: shared.headTimeout) { [self] in
            self.headTimer = nil
            guard self.phase != .closed, self.scanner.isReadingHead else { return }
            if self.phase == .awaitingFirstHead || (self.scanner.hasPartialHead && self.requests.isEmpty) {
                self.fail(.requestTimeout, head: nil)
            } else if self.requests.isEmpty {
                self.close()  // an idle kept-alive connection
            }
        }
    }

    /// A request body that stops arriving for ``PublicListenerContext/bodyIdleTimeout`` ends the
    /// connection (one timer per connection, re-armed from the last byte's time).
    private func armBodyTimer() {
        guard bodyTimer == nil, let loop = context?.eventLoop else { return }
        let deadline = lastCallerBytes + shared.bodyIdleTimeout
        bodyTimer = loop.scheduleTask(deadline: deadline) { [self] in
            self.bodyTimer = nil
            guard self.phase != .closed, !self.scanner.isReadingHead, !self.scanner.isRaw else { return }
            if self.lastCallerBytes + self.shared.bodyIdleTimeout <= loop.now {
                self.shared.metrics?.countError(.timeout)
                self.logger.debug("request body stalled; connection closed")
                self.close()
            } else {
                self.armBodyTimer()
            }
        }
    }

    private func armResponseTimer(restart: Bool = false) {
        // When the observer lost track of the responses, statuses never come: no timer then.
        guard let loop = context?.eventLoop, !responseLost, requests.awaitsResponseHead else {
            if restart { responseTimer?.cancel(); responseTimer = nil }
            return
        }
        if restart { responseTimer?.cancel(); responseTimer = nil }
        guard responseTimer == nil else { return }
        responseTimer = loop.scheduleTask(in: shared.responseTimeout) { [self] in
            self.responseTimer = nil
            guard self.phase != .closed, !self.responseLost, self.requests.awaitsResponseHead else { return }
            if self.responseStarted {
                self.shared.metrics?.countError(.timeout)
                self.close()
            } else {
                self.fail(.responseTimeout, head: nil)
            }
        }
    }

    private func close() {
        guard let context, phase != .closed else { return }
        phase = .closed
        context.close(promise: nil)
        shutDown()
    }

    /// Logs what is left and drops timers (once).
    private func shutDown() {
        phase = .closed
        headTimer?.cancel()
        headTimer = nil
        bodyTimer?.cancel()
        bodyTimer = nil
        responseTimer?.cancel()
        responseTimer = nil
        // Always: after only the local side's FIN the stream is still open on ours (a reset
        // of a finished stream does nothing). This also ends the stream's hold on us.
        stream?.reset()
        streamEnded = true
        for record in requests.drain() { log(record) }
    }

    private func log(_ record: PublicRequestLedger.Record) {
        shared.metrics?.countRequest(status: record.status)
        shared.metrics?.countBytes(in: record.bytesIn, out: record.bytesOut)
        logger.info("request", metadata: [
            "tunnel.name": "\(tunnelName?.rawValue ?? "-")", "method": "\(record.method)", "path": "\(record.path)",
            "status": "\(record.status.map(String.init) ?? "-")", "bytes_in": "\(record.bytesIn)", "bytes_out": "\(record.bytesOut)",
            "duration_ms": "\(milliseconds(since: record.started))",
        ])
    }
}
