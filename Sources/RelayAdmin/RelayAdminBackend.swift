/// What the HTTP side needs from the relay. The CLI provides the conformance, so this module
/// does not depend on the relay server.
public protocol RelayAdminBackend: Sendable {
    /// Whether new allocations are accepted (`/ready`): false while draining or when a
    /// configured Redis is unreachable.
    func isReady() async -> Bool
    /// The Prometheus text exposition for `/metrics`.
    func metricsText() async -> String
}
