import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import NIOWebSocket

/// Opens the client side of a stream transport step by step (DESIGN §9): TCP to the target
/// or to an HTTP proxy with `CONNECT`, then TLS with the caller's ALPN, then (for WebSocket)
/// the upgrade. Every step has its own error with what the other side said; the returned
/// channel's pipeline ends in bytes, ready for the caller's handler (yamux).
public struct StreamDialer: Sendable {
    /// Dial through this proxy, if any.
    public var proxy: HTTPProxy?
    /// Budget for each step (TCP connect, CONNECT answer, TLS handshake, upgrade answer).
    public var stepTimeout: TimeAmount
    public var group: any EventLoopGroup

    public init(proxy: HTTPProxy?, stepTimeout: TimeAmount = .seconds(10), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.proxy = proxy
        self.stepTimeout = stepTimeout
        self.group = group
    }

    /// TLS on the stream.
    public struct TLS: Sendable {
        public var serverName: String?
        /// PEM CAs to verify the server with; `nil`: the system's roots with `verify`, else
        /// not verified.
        public var caPath: String?
        public var alpn: [String]
        /// Verify against the system's roots when there is no `caPath`.
        public var verify: Bool
        public init(serverName: String?, caPath: String?, alpn: [String], verify: Bool = false) {
            self.serverName = serverName
            self.caPath = caPath
            self.alpn = alpn
            self.verify = verify
        }
    }

    /// A TCP connection to `host:port` (through the proxy when set), with TLS when `tls` is
    /// given. Returns the channel and the ALPN protocol agreed (if any).
    public func connect(host: String, port: Int, tls: TLS?) async throws -> (any Channel, String?) {
        let dialHost = proxy?.host ?? host
        let dialPort = proxy?.port ?? port
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(stepTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: dialHost, port: dialPort).get()
        do {
            if let proxy {
                let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
                var headers = HTTPHeaders()
                headers.add(name: "Host", value: authority)
                headers.add(name: "User-Agent", value: "zrc-relay")
                if let authorization = proxy.authorization { headers.add(name: "Proxy-Authorization", value: authorization) }
                let request = HTTPRequestHead(version: .http1_1, method: .CONNECT, uri: authority, headers: headers)
                _ = try await exchange(on: channel, stage: "proxy CONNECT via \(proxy)", request: request,
                                       expected: { (200..<300).contains($0) })
            }
            var negotiated: String?
            if let tls { negotiated = try await addTLS(tls, to: channel) }
            return (channel, negotiated)
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// A WebSocket to `address` (TLS with ALPN `http/1.1` for `wss`), upgraded with
    /// `subprotocol`; the pipeline then ends in a ``WebSocketStreamHandler`` carrying bytes.
    public func connectWebSocket(
        _ address: WebSocketAddress, serverName: String?, caPath: String?, verify: Bool = false,
        subprotocol: String = WebSocketHandshake.relaySubprotocol,
        configuration: WebSocketStreamHandler.Configuration = .client,
        onEnd: @escaping @Sendable (WebSocketStreamHandler.Ending) -> Void = { _ in }
    ) async throws -> any Channel {
        let tls = address.tls ? TLS(serverName: serverName ?? nameForSNI(address.host), caPath: caPath, alpn: ["http/1.1"],
                                    verify: verify) : nil
        let (channel, _) = try await connect(host: address.host, port: address.port, tls: tls)
        do {
            let key = WebSocketHandshake.makeKey()
            let request = WebSocketHandshake.request(host: address.authority, path: address.path, key: key, subprotocol: subprotocol)
            try await exchange(on: channel, stage: "WebSocket upgrade at \(address)", request: request,
                               expected: { $0 == 101 }, accept: { WebSocketHandshake.problem(with: $0, key: key, subprotocol: subprotocol) }) { pipeline in
                try pipeline.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: WebSocketMessageRules.maximumMessageBytes)))
                try pipeline.addHandler(WebSocketFrameEncoder())
                try pipeline.addHandler(WebSocketStreamHandler(configuration: configuration, onEnd: onEnd))
            }
            return channel
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// One HTTP exchange on `channel`; on success the HTTP handlers are removed after
    /// `then` added what follows (the decoder hands any early bytes on to it).
    @discardableResult
    private func exchange(
        on channel: any Channel, stage: String, request: HTTPRequestHead, expected: @escaping @Sendable (UInt) -> Bool,
        accept: @escaping @Sendable (HTTPResponseHead) -> String? = { _ in nil },
        then: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void = { _ in }
    ) async throws -> HTTPResponseHead {
        let promise = channel.eventLoop.makePromise(of: HTTPResponseHead.self)
        let timeout = stepTimeout
        try await channel.eventLoop.submit {
            let encoder = HTTPRequestEncoder()
            let decoder = ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
            let handler = HTTPExchangeHandler(stage: stage, request: request, timeout: timeout, promise: promise,
                                              expected: expected, accept: accept)
            let tap = RawResponseTap()
            handler.tap = tap
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(tap)
            try pipeline.addHandler(encoder)
            try pipeline.addHandler(decoder)
            try pipeline.addHandler(handler)
        }.get()
        let head = try await promise.futureResult.get()
        try await channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            try then(pipeline)
            pipeline.removeHandler(try pipeline.handler(type: HTTPExchangeHandler.self), promise: nil)
            pipeline.removeHandler(try pipeline.handler(type: RawResponseTap.self), promise: nil)
            pipeline.removeHandler(try pipeline.handler(type: HTTPRequestEncoder.self), promise: nil)
            pipeline.removeHandler(try pipeline.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self), promise: nil)
        }.get()
        return head
    }

    /// TLS 1.3 at the head of the pipeline; waits for the handshake.
    private func addTLS(_ tls: TLS, to channel: any Channel) async throws -> String? {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.applicationProtocols = tls.alpn
        if let caPath = tls.caPath {
            configuration.trustRoots = .file(caPath)
        } else if !tls.verify {
            configuration.certificateVerification = .none
        }
        let context = try NIOSSLContext(configuration: configuration)
        let promise = channel.eventLoop.makePromise(of: String?.self)
        let timeout = stepTimeout
        try await channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            let watcher = TLSHandshakeWatcher(promise: promise, timeout: timeout)
            try pipeline.addHandler(try NIOSSLClientHandler(context: context, serverHostname: tls.serverName), position: .first)
            try pipeline.addHandler(watcher)
        }.get()
        let negotiated = try await promise.futureResult.get()
        try await channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            if let watcher = try? pipeline.handler(type: TLSHandshakeWatcher.self) { pipeline.removeHandler(watcher, promise: nil) }
        }.get()
        return negotiated
    }

    /// SNI carries names only, never IP literals.
    private func nameForSNI(_ host: String) -> String? {
        host.contains(":") || host.split(separator: ".").allSatisfy({ Int($0) != nil }) ? nil : host
    }
}

/// Fulfils `promise` with the agreed ALPN protocol when the TLS handshake completes.
final class TLSHandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: confined to the channel's event loop.
    typealias InboundIn = ByteBuffer

    private let promise: EventLoopPromise<String?>
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var done = false

    init(promise: EventLoopPromise<String?>, timeout: TimeAmount) {
        self.promise = promise
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { [self] in
            self.finish(.failure(TLSDialError("TLS handshake took longer than \(timeout.nanoseconds / 1_000_000_000) s")))
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish(.failure(TLSDialError("cancelled")))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event { finish(.success(negotiated)) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failure(TLSDialError("TLS handshake failed: \(error)")))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(TLSDialError("connection closed during the TLS handshake")))
        context.fireChannelInactive()
    }

    private func finish(_ result: Result<String?, TLSDialError>) {
        guard !done else { return }
        done = true
        timer?.cancel()
        promise.completeWith(result.mapError { $0 as any Error })
    }
}

/// The TLS step of a dial failed.
public struct TLSDialError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
