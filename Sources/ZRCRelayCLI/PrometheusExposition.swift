import RelayCore
import RelayServer

/// Renders `RelayCounters` as Prometheus text (DESIGN §7): prefix `zrc_relay_`, a `region`
/// label on every series, no label holding an id or an address.
enum PrometheusExposition {
    static func render(_ c: RelayCounters, region: String) -> String {
        var out = ""
        let r = "region=\"\(escape(region))\""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP zrc_relay_\(name) \(help)\n# TYPE zrc_relay_\(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: String, _ value: some CustomStringConvertible) {
            out += "zrc_relay_\(name){\(r)\(labels.isEmpty ? "" : ",")\(labels)} \(value)\n"
        }
        family("active_allocations", "gauge", "Allocations currently live.")
        sample("active_allocations", "", c.activeAllocations)
        family("allocations_total", "counter", "Allocations ended, by outcome.")
        for outcome in AllocationOutcome.allCases { sample("allocations_total", "outcome=\"\(outcome.rawValue)\"", c.allocationsEnded[outcome] ?? 0) }
        family("bytes_forwarded_total", "counter", "Datagram payload bytes forwarded, by receiving transport.")
        for t in RelayCounters.Transport.allCases { sample("bytes_forwarded_total", "transport=\"\(t.rawValue)\"", c.bytesForwarded[t] ?? 0) }
        family("packets_forwarded_total", "counter", "Datagrams forwarded, by receiving transport.")
        for t in RelayCounters.Transport.allCases { sample("packets_forwarded_total", "transport=\"\(t.rawValue)\"", c.packetsForwarded[t] ?? 0) }
        family("packets_dropped_total", "counter", "Datagrams dropped, by reason.")
        for reason in DropReason.allCases { sample("packets_dropped_total", "reason=\"\(reason.rawValue)\"", c.packetsDropped[reason] ?? 0) }
        family("connections", "gauge", "Open client connections, by transport.")
        for t in RelayCounters.Transport.allCases { sample("connections", "transport=\"\(t.rawValue)\"", c.connections[t] ?? 0) }
        family("rate_limit_hits_total", "counter", "Refusals by rate limits and lists, by kind.")
        for k in RelayCounters.RateLimitKind.allCases { sample("rate_limit_hits_total", "kind=\"\(k.rawValue)\"", c.rateLimitHits[k] ?? 0) }
        family("errors_total", "counter", "ERROR frames sent, by code.")
        for code in RelayErrorCode.all where code != .replaced { sample("errors_total", "code=\"\(code.name)\"", c.errors[code.name] ?? 0) }
        family("token_verifications_total", "counter", "Token verifications, by result.")
        sample("token_verifications_total", "result=\"ok\"", c.tokenVerifications["ok"] ?? 0)
        for code in [RelayErrorCode.invalidToken, .untrustedKey, .tokenExpired, .tokenNotYetValid, .wrongAudience, .revoked] {
            sample("token_verifications_total", "result=\"\(code.name)\"", c.tokenVerifications[code.name] ?? 0)
        }
        histogram(&out, "allocation_duration_seconds", "Lifetime of ended allocations.", c.endedDurations,
                  [1, 10, 60, 300, 1800, 3600, 14_400, 86_400], region: r)
        histogram(&out, "quota_usage_ratio", "Share of the quota used, at allocation end.", c.endedQuotaUsage,
                  [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0], region: r)
        return out
    }

    private static func histogram(_ out: inout String, _ name: String, _ help: String, _ values: [Double], _ buckets: [Double], region r: String) {
        out += "# HELP zrc_relay_\(name) \(help)\n# TYPE zrc_relay_\(name) histogram\n"
        for upper in buckets {
            out += "zrc_relay_\(name)_bucket{\(r),le=\"\(format(upper))\"} \(values.filter { $0 <= upper }.count)\n"
        }
        out += "zrc_relay_\(name)_bucket{\(r),le=\"+Inf\"} \(values.count)\n"
        out += "zrc_relay_\(name)_sum{\(r)} \(format(values.reduce(0, +)))\n"
        out += "zrc_relay_\(name)_count{\(r)} \(values.count)\n"
    }

    private static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
