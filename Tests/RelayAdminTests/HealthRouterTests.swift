import Hummingbird
import HummingbirdTesting
import RelayAdmin
import Synchronization
import Testing

final class FakeBackend: RelayAdminBackend {
    let ready = Atomic<Bool>(true)
    func isReady() async -> Bool { ready.load(ordering: .relaxed) }
    func metricsText() async -> String { "# TYPE zrc_relay_up gauge\nzrc_relay_up 1\n" }
}

@Suite struct HealthRouterTests {
    @Test func healthReadyMetrics() async throws {
        let backend = FakeBackend()
        let app = Application(router: HealthRouter.make(backend: backend))
        try await app.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/ready", method: .get) { #expect($0.status == .ok) }
            backend.ready.store(false, ordering: .relaxed)
            try await client.execute(uri: "/ready", method: .get) { #expect($0.status == .serviceUnavailable) }
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(String(buffer: response.body).contains("zrc_relay_up 1"))
            }
            try await client.execute(uri: "/nope", method: .get) { #expect($0.status == .notFound) }
        }
    }
}
