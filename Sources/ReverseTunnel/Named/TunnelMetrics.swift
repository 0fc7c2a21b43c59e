import Prometheus

/// The metrics of named tunnels (DESIGN §11), declared once and exported in the Prometheus
/// text format by ``TunnelMetricsListener``. Labels are small fixed sets.
public final class TunnelMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let active: Gauge
    private let requests: [String: Counter]
    private let bytesIn: Counter
    private let bytesOut: Counter
    private let errors: [TunnelErrorKind: Counter]

    /// The `status_class` labels.
    static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"]

    public init() {
        active = registry.makeGauge(name: "zrc_tunnel_active", help: "Named tunnels with a connected client.")
        var requests: [String: Counter] = [:]
        for label in Self.statusClasses {
            requests[label] = registry.makeCounter(
                name: "zrc_tunnel_requests_total", labels: [("status_class", label)],
                help: "Requests on public connections by response status class (none: no response).")
        }
        self.requests = requests
        bytesIn = registry.makeCounter(
            name: "zrc_tunnel_bytes_total", labels: [("direction", "in")], help: "Bytes through named tunnels (in: from callers).")
        bytesOut = registry.makeCounter(
            name: "zrc_tunnel_bytes_total", labels: [("direction", "out")], help: "Bytes through named tunnels (in: from callers).")
        var errors: [TunnelErrorKind: Counter] = [:]
        for kind in TunnelErrorKind.allCases {
            errors[kind] = registry.makeCounter(
                name: "zrc_tunnel_errors_total", labels: [("kind", kind.rawValue)], help: "Public requests the server answered itself.")
        }
        self.errors = errors
    }

    func setActive(_ count: Int) { active.set(Double(count)) }

    func countRequest(status: Int?) {
        let label: String
        if let status, (100..<600).contains(status) { label = "\(status / 100)xx" } else { label = "none" }
        requests[label]?.increment()
    }

    func countBytes(in bytesFromCaller: Int, out bytesToCaller: Int) {
        if bytesFromCaller > 0 { bytesIn.increment(by: Int64(bytesFromCaller)) }
        if bytesToCaller > 0 { bytesOut.increment(by: Int64(bytesToCaller)) }
    }

    func countError(_ kind: TunnelErrorKind) { errors[kind]?.increment() }

    /// The Prometheus text exposition.
    public func render() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
