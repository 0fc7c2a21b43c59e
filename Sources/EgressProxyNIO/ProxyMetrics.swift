import Prometheus

/// The egress proxy server's metrics (DESIGN §12), declared once: `zrc_proxy_streams_active`,
/// `zrc_proxy_streams_total{outcome}`, `zrc_proxy_bytes_total{direction}` (`up`: agent to
/// destination, `down`: destination to agent) and `zrc_proxy_circuit_open` (destinations
/// whose circuit refuses right now, read at scrape time).
public final class ProxyMetrics: Sendable {
    /// How a stream ended, as the `outcome` label.
    public enum Outcome: String, CaseIterable, Sendable {
        case ok, denied, dns_failed, dial_failed, timeout, circuit_open, busy, malformed
    }

    private let registry = PrometheusCollectorRegistry()
    private let active: Gauge
    private let streams: [Outcome: Counter]
    private let bytesUp: Counter
    private let bytesDown: Counter
    private let circuitOpen: Gauge

    public init() {
        active = registry.makeGauge(name: "zrc_proxy_streams_active", help: "Streams open through the proxy server.")
        var streams: [Outcome: Counter] = [:]
        for outcome in Outcome.allCases {
            streams[outcome] = registry.makeCounter(name: "zrc_proxy_streams_total", labels: [("outcome", outcome.rawValue)],
                                                    help: "Streams by how they ended.")
        }
        self.streams = streams
        bytesUp = registry.makeCounter(name: "zrc_proxy_bytes_total", labels: [("direction", "up")], help: "Bytes carried.")
        bytesDown = registry.makeCounter(name: "zrc_proxy_bytes_total", labels: [("direction", "down")], help: "Bytes carried.")
        circuitOpen = registry.makeGauge(name: "zrc_proxy_circuit_open", help: "Destinations whose circuit is open.")
    }

    func streamOpened() { active.increment(by: 1) }

    func streamEnded(_ outcome: Outcome, up: Int, down: Int, wasActive: Bool) {
        if wasActive { active.decrement(by: 1) }
        streams[outcome]?.increment()
        if up > 0 { bytesUp.increment(by: Int64(up)) }
        if down > 0 { bytesDown.increment(by: Int64(down)) }
    }

    /// Prometheus text; `openCircuits` is read at scrape time.
    public func render(openCircuits: Int) -> String {
        circuitOpen.set(Double(openCircuits))
        return registry.emitToString()
    }
}
