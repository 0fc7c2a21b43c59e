import Logging
import RedisProtocol
import NIOCore
import NIOPosix
import NIOSSL

/// Why a Redis call failed.
public enum RedisError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The server could not be reached (or the TLS handshake or AUTH failed).
    case connect(String)
    /// No reply within the call's timeout; the connection was closed (its replies can no
    /// longer be matched to requests).
    case timeout(command: String)
    /// The connection closed before the reply.
    case closed
    /// The server answered with an error reply.
    case server(String)
    /// The server sent bytes that are not RESP, or a reply nobody asked for.
    case protocolViolation(String)
    /// The client is backing off after failures and did not try (see `RedisClient`).
    case unavailable(String)

    public var description: String {
        switch self {
        case .connect(let why): return "cannot connect to Redis: \(why)"
        case .timeout(let command): return "Redis did not answer \(command) in time"
        case .closed: return "the Redis connection closed"
        case .server(let message): return "Redis error: \(message)"
        case .protocolViolation(let why): return "Redis protocol violation: \(why)"
        case .unavailable(let why): return "Redis unavailable: \(why)"
        }
    }
}

/// One request on the wire: its bytes, and the promise of its last reply after
/// `replies` replies (SUBSCRIBE with n channels is answered n times).
struct RedisRequest {
    var bytes: [UInt8]
    var replies: Int
    var promise: EventLoopPromise<RESPValue>
}

/// Matches replies to requests in order (pipelining), hands out-of-band data (RESP3 pushes,
/// pub/sub messages) to `onPush`, and fails everything pending when the connection ends.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private var parser: RESPParser
    private var pending = CircularBuffer<(promise: EventLoopPromise<RESPValue>, remaining: Int)>()
    private let onPush: (@Sendable (RESPValue) -> Void)?
    private var failure: RedisError?

    init(limits: RESPParser.Limits, onPush: (@Sendable (RESPValue) -> Void)?) {
        parser = RESPParser(limits: limits)
        self.onPush = onPush
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failure {
            request.promise.fail(failure)
            promise?.fail(failure)
            return
        }
        pending.append((request.promise, max(1, request.replies)))
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: request.bytes)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        parser.append(buffer.readableBytesView)
        do throws(RESPError) {
            while let value = try parser.next() {
                if isOutOfBand(value) {
                    onPush?(value)
                    continue
                }
                guard var head = pending.popFirst() else {
                    throw RESPError("a reply nobody asked for")
                }
                head.remaining -= 1
                if head.remaining > 0 {
                    pending.prepend(head)
                } else {
                    head.promise.succeed(value)
                }
            }
        } catch {
            failAll(.protocolViolation(error.description))
            context.close(promise: nil)
        }
    }

    /// RESP3 pushes, and RESP2 pub/sub deliveries (`message`, `pmessage`, `smessage` arrays).
    private func isOutOfBand(_ value: RESPValue) -> Bool {
        if case .push = value { return true }
        guard onPush != nil, case .array(let elements?) = value, elements.count >= 3,
              let kind = elements.first?.string else { return false }
        return kind == "message" || kind == "pmessage" || kind == "smessage"
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.closed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(.connect("\(error)"))
        context.close(promise: nil)
    }

    func failAll(_ error: RedisError) {
        if failure == nil { failure = error }
        while let head = pending.popFirst() { head.promise.fail(error) }
    }
}

/// One connection to Redis: pipelined calls with a timeout each; AUTH and SELECT from the URL;
/// TLS for `rediss://`. Out-of-band data (pub/sub) goes to `onPush`.
public final class RedisConnection: Sendable {
    public let channel: any Channel
    public let url: RedisURL

    private init(channel: any Channel, url: RedisURL) {
        self.channel = channel
        self.url = url
    }

    /// Connects, authenticates, selects the database and sends one PING, each within `timeout`.
    public static func connect(
        to url: RedisURL, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, timeout: Duration = .seconds(2),
        tlsConfiguration: TLSConfiguration? = nil, limits: RESPParser.Limits = .init(),
        onPush: (@Sendable (RESPValue) -> Void)? = nil
    ) async throws(RedisError) -> RedisConnection {
        let sslContext: NIOSSLContext?
        if url.tls {
            do {
                sslContext = try NIOSSLContext(configuration: tlsConfiguration ?? .makeClientConfiguration())
            } catch {
                throw .connect("TLS set-up: \(error)")
            }
        } else {
            sslContext = nil
        }
        let host = url.host
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(TimeAmount(timeout))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let sslContext {
                            let serverName = host.allSatisfy({ $0.isNumber || $0 == "." || $0 == ":" }) ? nil : host
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                        }
                        try channel.pipeline.syncOperations.addHandler(RedisChannelHandler(limits: limits, onPush: onPush))
                    }
                }
                .connect(host: url.host, port: url.port)
                .get()
        } catch {
            throw .connect("\(url.host):\(url.port): \(error)")
        }
        let connection = RedisConnection(channel: channel, url: url)
        do throws(RedisError) {
            if let password = url.password {
                let auth = url.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
                _ = try await connection.send(auth, timeout: timeout, label: "AUTH")
            }
            if url.database != 0 {
                _ = try await connection.send(["SELECT", String(url.database)], timeout: timeout)
            }
            // One round trip proves the server speaks RESP (and, with TLS, that the handshake
            // and the certificate check passed) before anyone relies on the connection.
            _ = try await connection.send(["PING"], timeout: timeout)
        } catch {
            await connection.close()
            throw .connect("\(error)")
        }
        return connection
    }

    /// Whether the connection is open.
    public var isActive: Bool { channel.isActive }

    /// Sends one command and waits for its reply. An error reply throws `.server`. On a
    /// timeout the connection is closed. `label` names the command in errors (AUTH's
    /// arguments are never shown).
    @discardableResult
    public func send(_ arguments: [String], timeout: Duration = .seconds(2), label: String? = nil) async throws(RedisError) -> RESPValue {
        let value = try await call(RESPEncoder.command(arguments), replies: 1, timeout: timeout, label: label ?? arguments.first ?? "?")
        if case .error(let message) = value { throw .server(message) }
        return value
    }

    /// Sends several commands in one write and returns their replies in order (error replies
    /// are returned as `.error`, not thrown).
    public func pipeline(_ commands: [[String]], timeout: Duration = .seconds(2)) async throws(RedisError) -> [RESPValue] {
        let loop = channel.eventLoop
        let promises = commands.map { _ in loop.makePromise(of: RESPValue.self) }
        for (command, promise) in zip(commands, promises) {
            channel.write(RedisRequest(bytes: RESPEncoder.command(command), replies: 1, promise: promise), promise: Self.failing(promise, on: loop))
        }
        channel.flush()
        let all = EventLoopFuture.whenAllComplete(promises.map(\.futureResult), on: loop)
        let results = try await withTimeout(all, timeout: timeout, label: "pipeline of \(commands.count)")
        var replies: [RESPValue] = []
        for result in results {
            switch result {
            case .success(let value): replies.append(value)
            case .failure(let error): throw (error as? RedisError) ?? .closed
            }
        }
        return replies
    }

    /// SUBSCRIBE (`channels.count` confirmations); messages then arrive through `onPush`.
    public func subscribe(_ channels: [String], timeout: Duration = .seconds(2)) async throws(RedisError) {
        guard !channels.isEmpty else { return }
        _ = try await call(RESPEncoder.command(["SUBSCRIBE"] + channels), replies: channels.count, timeout: timeout, label: "SUBSCRIBE")
    }

    public func close() async {
        try? await channel.close()
    }

    private func call(_ bytes: [UInt8], replies: Int, timeout: Duration, label: String) async throws(RedisError) -> RESPValue {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        channel.writeAndFlush(RedisRequest(bytes: bytes, replies: replies, promise: promise),
                              promise: Self.failing(promise, on: channel.eventLoop))
        return try await withTimeout(promise.futureResult, timeout: timeout, label: label)
    }

    /// A write promise that fails `reply` when the write fails. A request written after the
    /// connection closed (a TLS handshake that failed right after connect, say) never reaches
    /// the handler that would answer or fail it, and its caller would wait forever; failing a
    /// reply the handler already failed is a no-op.
    private static func failing(_ reply: EventLoopPromise<RESPValue>, on loop: any EventLoop) -> EventLoopPromise<Void> {
        let written = loop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in reply.fail(RedisError.closed) }
        return written
    }

    private func withTimeout<T: Sendable>(_ future: EventLoopFuture<T>, timeout: Duration, label: String) async throws(RedisError) -> T {
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            // Replies can no longer be matched to requests: end the connection.
            channel.pipeline.handler(type: RedisChannelHandler.self).whenSuccess { $0.failAll(.timeout(command: label)) }
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            return try await future.get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw .connect("\(error)")
        }
    }
}
