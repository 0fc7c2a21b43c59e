import EgressProxy
import Logging
import NIOCore
import NIOPosix
import YamuxNIO

/// One stream an agent opened on the server: the `OPEN` line, the policy, the breaker, the
/// dial, the answer, then a ``YamuxStreamBridge`` to the destination. Everything happens on
/// the stream's event loop (the dialled channel uses the same loop).
///
/// ```
/// readingLine --OPEN ok--> checking --name--> resolving --> dialing --connected--> bridged
///      \--too long / malformed: reset          \--refused: ERR, FIN     \--failed: ERR, FIN
/// ```
final class ProxyServerStream: @unchecked Sendable {
    // @unchecked Sendable: every mutable member is touched only on `stream.eventLoop`.

    enum Phase {
        case readingLine
        case opening
        case bridged
        case finished
    }

    private let server: EgressProxyServer
    private let stream: YamuxStreamChannel
    private let agent: String
    private var logger: Logger
    private var phase = Phase.readingLine
    private var line = ProxyLineBuffer()
    /// Data that came after the `OPEN` line while the stream was being opened; bounded by the
    /// stream's receive window, since none of it is acknowledged until it reached the socket.
    private var pending: [ByteBuffer] = []
    private var inputClosed = false
    private var destination = ""
    private var breakerKey: String?
    private var isTrial = false
    private var counted = false
    private var timer: Scheduled<Void>?
    private let started = ContinuousClock.now
    private var bytesUp = 0

    init(server: EgressProxyServer, stream: YamuxStreamChannel, agent: String, logger: Logger) {
        self.server = server
        self.stream = stream
        self.agent = agent
        self.logger = logger.with("zrc.stream", "\(stream.id)")
    }

    var loop: any EventLoop { stream.eventLoop }

    /// Answers `busy` at once (the agent is at `--max-streams`).
    func refuseBusy() {
        phase = .opening
        refuse(.busy, "too many streams", outcome: .busy)
    }

    func start() {
        counted = true
        server.metrics.streamOpened()
        timer = loop.scheduleTask(in: TimeAmount(server.configuration.openLineTimeout)) { [self] in
            if phase == .readingLine { abort(.malformed, "no OPEN line in time") }
        }
        stream.setEventHandler { [self] event in handle(event) }
    }

    private func handle(_ event: YamuxStreamEvent) {
        switch event {
        case .data(let bytes):
            switch phase {
            case .readingLine:
                switch line.append(bytes.readableBytesView) {
                case .needMore:
                    stream.consumed(bytes.readableBytes)
                case .line(let text, let leftover):
                    stream.consumed(bytes.readableBytes - leftover.count)
                    if !leftover.isEmpty { pending.append(ByteBuffer(bytes: leftover)) }
                    opened(text)
                case .tooLong:
                    abort(.malformed, "OPEN line too long")
                case .finished:
                    break
                }
            case .opening:
                pending.append(bytes)
            case .bridged, .finished:
                break
            }
        case .endOfInput:
            inputClosed = true
            if phase == .readingLine { abort(.malformed, "stream ended before the OPEN line") }
        case .closed, .reset:
            if phase == .readingLine || phase == .opening {
                let wasOpening = phase == .opening
                phase = .finished
                timer?.cancel()
                abandon()
                end(wasOpening ? .cancelled : .malformed, note: "stream ended by the agent while opening")
            }
        }
    }

    private func opened(_ text: [UInt8]) {
        timer?.cancel()
        phase = .opening
        let open: ProxyLine.Open
        do {
            open = try ProxyLine.parseOpen(text)
        } catch {
            abort(.malformed, "malformed OPEN line (\(error))")
            return
        }
        destination = "\(open.host):\(open.port)"
        logger = logger.with("zrc.destination", destination)
        guard let host = ProxyHost(open.host) else {
            abort(.malformed, "malformed OPEN host")
            return
        }
        let policy = server.policy
        switch policy.check(host: host, port: open.port) {
        case .denied(let why):
            refuse(.denied, why, outcome: .denied)
        case .dial(let address):
            admitAndDial([address], port: open.port)
        case .resolve(let mustMatch):
            guard case .name(let name) = host else { return }
            ProxyResolver.resolve(name, on: loop).whenComplete { [self] result in
                guard phase == .opening else { return }
                switch result {
                case .failure(let error):
                    refuse(.dnsFailed, "cannot resolve \(name): \(error)", outcome: .dns_failed)
                case .success(let addresses):
                    switch policy.check(addresses: addresses, port: open.port, addressesMustMatch: mustMatch) {
                    case .denied(let why): refuse(.denied, why, outcome: .denied)
                    case .dial(let checked): admitAndDial(checked, port: open.port)
                    }
                }
            }
        }
    }

    private func admitAndDial(_ addresses: [ProxyIPAddress], port: Int) {
        let key = destination
        let admission = server.breakers.withLockedValue { $0.admit(key, now: .now) }
        switch admission {
        case .open:
            refuse(.circuitOpen, "circuit open for \(key)", outcome: .circuit_open)
            return
        case .trial:
            isTrial = true
        case .allowed:
            break
        }
        breakerKey = key
        let deadline = NIODeadline.now() + TimeAmount(server.configuration.dialTimeout)
        dial(addresses[...], port: port, deadline: deadline, lastError: nil)
    }

    /// Tries the checked addresses in order within one dial-timeout budget.
    private func dial(_ addresses: ArraySlice<ProxyIPAddress>, port: Int, deadline: NIODeadline, lastError: (any Error)?) {
        guard phase == .opening else { return }
        let remaining = deadline - NIODeadline.now()
        guard let address = addresses.first, remaining > .zero else {
            dialFailed(lastError ?? ChannelError.connectTimeout(TimeAmount(server.configuration.dialTimeout)))
            return
        }
        let target: SocketAddress
        do {
            target = try ProxyResolver.socketAddress(address, port: port)
        } catch {
            dial(addresses.dropFirst(), port: port, deadline: deadline, lastError: error)
            return
        }
        ClientBootstrap(group: loop)
            .connectTimeout(remaining)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.autoRead, value: false)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connect(to: target)
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    connected(channel)
                case .failure(let error):
                    dial(addresses.dropFirst(), port: port, deadline: deadline, lastError: error)
                }
            }
    }

    private func dialFailed(_ error: any Error) {
        guard phase == .opening else { return }
        if let key = breakerKey {
            let opened = server.breakers.withLockedValue { $0.recordFailure(key, now: .now) }
            if opened { logger.notice("circuit opened", metadata: ["zrc.destination": "\(key)"]) }
        }
        if case ChannelError.connectTimeout = error {
            refuse(.timeout, "dial timed out", outcome: .timeout)
        } else {
            refuse(.dialFailed, "\(error)", outcome: .dial_failed)
        }
    }

    private func connected(_ channel: any Channel) {
        guard phase == .opening else {
            // The agent gave up while we dialled.
            channel.close(promise: nil)
            return
        }
        if let key = breakerKey { server.breakers.withLockedValue { $0.recordSuccess(key) } }
        phase = .bridged
        stream.write(ByteBuffer(string: ProxyLine.ok))
        let stream = self.stream
        for bytes in pending {
            let count = bytes.readableBytes
            bytesUp += count
            channel.writeAndFlush(bytes).whenSuccess { stream.consumed(count) }
        }
        pending.removeAll()
        if inputClosed { channel.close(mode: .output, promise: nil) }
        let idle = TimeAmount(server.configuration.idleTimeout)
        do {
            let bridge = YamuxStreamBridge(stream: stream) { [self] summary in
                loop.execute { self.finished(summary) }
            }
            try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: idle))
            try channel.pipeline.syncOperations.addHandler(bridge)
            try channel.pipeline.syncOperations.addHandler(IdleCloser())
        } catch {
            channel.close(promise: nil)
            stream.reset()
            end(.dial_failed, note: "cannot set up the bridge: \(error)")
        }
    }

    private func finished(_ summary: YamuxStreamBridge.Summary) {
        end(.ok, up: bytesUp + summary.bytesFromStream, down: summary.bytesToStream, note: summary.ending)
    }

    /// Answers `ERR`, half-closes, and makes sure the stream ends even if the agent never
    /// closes its side.
    private func refuse(_ code: ProxyErrorCode, _ why: String, outcome: ProxyMetrics.Outcome) {
        guard phase == .opening || phase == .readingLine else { return }
        phase = .finished
        timer?.cancel()
        stream.write(ByteBuffer(string: ProxyLine.error(code, why)))
        stream.closeWrite()
        let stream = self.stream
        let cleanup = loop.scheduleTask(in: .seconds(10)) { stream.reset() }
        stream.closeFuture.whenComplete { _ in cleanup.cancel() }
        // Bytes the agent sent anyway are acknowledged so they cannot pin the window.
        stream.setEventHandler { event in
            if case .data(let bytes) = event { stream.consumed(bytes.readableBytes) }
        }
        end(outcome, note: why)
    }

    /// Resets the stream (malformed input or no line in time).
    private func abort(_ outcome: ProxyMetrics.Outcome, _ why: String) {
        guard phase != .finished, phase != .bridged else { return }
        phase = .finished
        timer?.cancel()
        abandon()
        stream.reset()
        end(outcome, note: why)
    }

    private func abandon() {
        if isTrial, let key = breakerKey {
            isTrial = false
            server.breakers.withLockedValue { $0.abandonTrial(key, now: .now) }
        }
    }

    private var ended = false

    /// The access log line and the metrics, once per stream.
    private func end(_ outcome: ProxyMetrics.Outcome, up: Int = 0, down: Int = 0, note: String) {
        guard !ended else { return }
        ended = true
        server.metrics.streamEnded(outcome, up: up, down: down, wasActive: counted)
        logger.info("stream", metadata: [
            "zrc.agent": "\(agent)", "zrc.destination": "\(destination.isEmpty ? "-" : destination)", "outcome": "\(outcome.rawValue)",
            "bytes_up": "\(up)", "bytes_down": "\(down)", "duration_ms": "\(milliseconds(since: started))", "detail": "\(note)",
        ])
    }
}
