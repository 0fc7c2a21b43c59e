import Logging
import NIOPosix
import RelayAdmin
import RelayFallback
import RelayEngine
import ServiceLifecycle

/// The relay as a `Service`: serves until graceful shutdown, then drains — GOAWAY to every
/// client, `/ready` 503, wait up to `drainTimeout` for clients to leave — and stops.
struct RelayService: Service {
    let server: RelayServer
    let logger: Logger
    /// The TCP fallback listeners' set-ups (none when `fallback.enabled = false`).
    var fallbacks: [FallbackListener.Configuration] = []
    var drainTimeout: Duration = .seconds(30)
    /// Runs once the relay's loop runs, before any listener opens (stored revocations).
    var afterStart: @Sendable () async -> Void = {}
    /// With a fleet: flushes, releases the leases and returns the `alt` for GOAWAY.
    var handOver: @Sendable () async -> String = { "" }

    func run() async throws {
        try server.start()
        await afterStart()
        var listeners: [FallbackListener] = []
        for fallback in fallbacks {
            do {
                listeners.append(try await FallbackListener.start(
                    configuration: fallback, relay: server, group: MultiThreadedEventLoopGroup.singleton, logger: logger))
            } catch {
                for listener in listeners { await listener.stop() }
                server.stop()
                throw error
            }
            logger.info("fallback listening", metadata: [
                "transport": "\(fallback.websocketPath == nil ? "tcp" : "tcp+websocket")", "tls": "\(fallback.tls != nil)",
                "listen": "\(fallback.host):\(listeners.last?.localAddress?.port ?? fallback.port)",
                "websocket_path": "\(fallback.websocketPath ?? "off")",
            ])
        }
        logger.info("relay listening", metadata: ["transport": "quic", "listen": "\(server.endpoint.localAddress)"])
        try? await gracefulShutdown()
        for listener in listeners { await listener.stop() }
        logger.info("draining: GOAWAY sent, waiting for clients to leave", metadata: ["timeout_s": "\(drainTimeout.components.seconds)"])
        await server.beginDrain(alternate: await handOver())
        let deadline = ContinuousClock.now + drainTimeout
        while ContinuousClock.now < deadline {
            if await server.liveCounts().boundConnections == 0 { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        await server.endRemaining()
        try? await Task.sleep(for: .milliseconds(200))  // let the last CONNECTION_CLOSEs leave
        server.stop()
        logger.info("relay stopped")
    }
}

/// `/ready` and `/metrics` answered from the relay.
struct RelayBackend: RelayAdminBackend {
    let server: RelayServer
    let metrics: RelayMetrics
    /// With Redis: `/ready` is 503 while the shared state does not answer.
    var fleet: FleetService?

    func isReady() async -> Bool {
        guard fleet?.isHealthy ?? true else { return false }
        return await server.isAcceptingAllocations()
    }

    func metricsText() async -> String {
        metrics.render(await server.counters())
    }
}
