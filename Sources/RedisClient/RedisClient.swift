import Logging
@_exported import RedisProtocol
import RelayCore
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A Redis connection that comes back by itself: a call finds the connection gone and
/// reconnects, unless the last attempt failed less than its backoff delay ago, in which case
/// it fails at once with `.unavailable` (callers never queue behind a dead server).
public final class RedisClient: Sendable {
    public let url: RedisURL
    private let group: any EventLoopGroup
    private let timeout: Duration
    private let backoff: ExponentialBackoff
    private let tlsConfiguration: TLSConfiguration?
    private let logger: Logger

    private struct State {
        var connection: RedisConnection?
        var connecting: Task<RedisConnection, any Error>?
        var failures = 0
        var nextAttempt: ContinuousClock.Instant?
    }

    private let state = Mutex(State())

    public init(url: RedisURL, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, timeout: Duration = .seconds(2),
                backoff: ExponentialBackoff = .init(), tlsConfiguration: TLSConfiguration? = nil, logger: Logger) {
        self.url = url
        self.group = group
        self.timeout = timeout
        self.backoff = backoff
        self.tlsConfiguration = tlsConfiguration
        self.logger = logger
    }

    /// Consecutive failed connection attempts (0 while connected).
    public var consecutiveFailures: Int { state.withLock { $0.failures } }

    @discardableResult
    public func send(_ arguments: [String], label: String? = nil) async throws(RedisError) -> RESPValue {
        let connection = try await connected()
        return try await connection.send(arguments, timeout: timeout, label: label)
    }

    public func pipeline(_ commands: [[String]]) async throws(RedisError) -> [RESPValue] {
        try await connected().pipeline(commands, timeout: timeout)
    }

    public func close() async {
        let connection = state.withLock { state -> RedisConnection? in
            defer { state.connection = nil }
            return state.connection
        }
        await connection?.close()
    }

    /// The open connection, or a new one (at most one attempt at a time).
    private func connected() async throws(RedisError) -> RedisConnection {
        enum Step {
            case ready(RedisConnection)
            case wait(Task<RedisConnection, any Error>)
            case refuse(Duration)
        }
        let now = ContinuousClock.now
        let step: Step = state.withLock { state in
            if let connection = state.connection, connection.isActive { return .ready(connection) }
            state.connection = nil
            if let task = state.connecting { return .wait(task) }
            if let next = state.nextAttempt, now < next { return .refuse(next - now) }
            let task = Task { [self] in try await self.open() }
            state.connecting = task
            return .wait(task)
        }
        switch step {
        case .ready(let connection):
            return connection
        case .refuse(let remaining):
            throw .unavailable("reconnecting in \(Int(remaining / .milliseconds(1))) ms")
        case .wait(let task):
            do {
                return try await task.value
            } catch let error as RedisError {
                throw error
            } catch {
                throw .connect("\(error)")
            }
        }
    }

    private func open() async throws -> RedisConnection {
        do {
            let connection = try await RedisConnection.connect(to: url, group: group, timeout: timeout, tlsConfiguration: tlsConfiguration)
            let wasDown = state.withLock { state -> Bool in
                defer {
                    state.connection = connection
                    state.connecting = nil
                    state.failures = 0
                    state.nextAttempt = nil
                }
                return state.failures > 0
            }
            if wasDown { logger.notice("Redis reachable again", metadata: ["redis": "\(url)"]) }
            return connection
        } catch {
            let delay = state.withLock { state -> Duration in
                let delay = backoff.delay(attempt: state.failures, unit: Double.random(in: 0..<1))
                state.failures += 1
                state.connecting = nil
                state.nextAttempt = .now + delay
                return delay
            }
            logger.warning("Redis unreachable", metadata: [
                "redis": "\(url)", "error": "\(error)", "retry_in_ms": "\(Int(delay / .milliseconds(1)))",
            ])
            throw error
        }
    }
}
