import Prometheus

/// The egress proxy server's metrics (DESIGN §12), declared once: `zrc_proxy_streams_active`,
/// `zrc_proxy_streams_total{outcome}`, `zrc_proxy_bytes_total{direction}` (`up`: agent to
/// destination, `down`: destination to agent) and `zrc_proxy_circuit_open` (destinations
/// whose circuit refuses right now, read at scrape time).
public final class ProxyMetrics: Sendable {
    /// How a stream ended, as the `outcome` label: `ok` (bridged), one of the `ERR` codes,
    /// `malformed` (bad or missing `OPEN` line: reset), `cancelled` (the agent ended the stream
    /// while it was being opened).
    public enum Outcome: String, CaseIterable, Sendable {
        case ok, denied, dns_failed, dial_failed, timeout, circuit_open, busy, malformed, cancelled
    }

    private let registry = PrometheusCollectorRegistry()
    private let active: Gauge
    private let streams: [Outcome: Counter]
    private let bytesUp: Counter
    private let bytesDown: Counter
    private let circuitOpen: Gauge

    public init() {
        active = registry.makeGauge(descriptor: Self.name("zrc_proxy_streams_active", "Streams open through the proxy server."))
        var streams: [Outcome: Counter] = [:]
        for outcome in Outcome.allCases {
            streams[outcome] = registry.makeCounter(descriptor: Self.name("zrc_proxy_streams_total", "Streams by how they ended."),
                                                    labels: [("outcome", outcome.rawValue)])
        }
        self.streams = streams
        let bytes = Self.name("zrc_proxy_bytes_total", "Bytes carried (up: agent to destination, down: back).")
        bytesUp = registry.makeCounter(descriptor: bytes, labels: [("direction", "up")])
        bytesDown = registry.makeCounter(descriptor: bytes, labels: [("direction", "down")])
        circuitOpen = registry.makeGauge(descriptor: Self.name("zrc_proxy_circuit_open", "Destinations whose circuit is open."))
    }

    /// A descriptor whose name is exactly `name` (no namespace, subsystem or unit parts).
    private static func name(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
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
