import Hummingbird

/// Routes of `metrics.listen`: `/health` (200 while the process serves), `/ready` (200 or 503),
/// `/metrics` (Prometheus text).
public enum HealthRouter {
    /// How long an HTTP connection to the metrics listener may stay idle before it is
    /// closed (15 s: Prometheus scrapes every 15–60 s and reconnects at no cost).
    public static let idleTimeout: Duration = .seconds(15)

    public static func make(backend: any RelayAdminBackend) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/health") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/ready") { _, _ in
            let ready = await backend.isReady()
            return Response(status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: ready ? "ready\n" : "not ready\n")))
        }
        router.get("/metrics") { _, _ in
            let text = await backend.metricsText()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        return router
    }
}
