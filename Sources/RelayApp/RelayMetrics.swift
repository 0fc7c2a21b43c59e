import CoreMetrics
import Prometheus
import RelayCore
import RelayEngine
import Synchronization

/// Every metric of DESIGN §7, declared once through swift-metrics and exported by
/// swift-prometheus. The relay's loop keeps plain counters (no atomics on the datagram path);
/// at each scrape the exporter adds what changed since the previous scrape.
final class RelayMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let region: String
    private let last = Mutex(RelayCounters())

    private let activeAllocations: CoreMetrics.Gauge
    private let allocations: [AllocationOutcome: CoreMetrics.Counter]
    private let bytes: [RelayCounters.Transport: CoreMetrics.Counter]
    private let packets: [RelayCounters.Transport: CoreMetrics.Counter]
    private let dropped: [DropReason: CoreMetrics.Counter]
    private let connections: [RelayCounters.Transport: CoreMetrics.Gauge]
    private let rateLimitHits: [RelayCounters.RateLimitKind: CoreMetrics.Counter]
    private let errors: [RelayErrorCode: CoreMetrics.Counter]
    private let verifications: [RelayCounters.TokenVerificationResult: CoreMetrics.Counter]
    private let duration: CoreMetrics.Recorder
    private let quotaUsage: CoreMetrics.Recorder
    private let endedIDsForgotten: CoreMetrics.Counter
    /// Made on first use: operations and regions are open sets (still never ids or addresses).
    private let sharedStateErrors = Mutex<[String: CoreMetrics.Counter]>([:])
    private let fleetInstances = Mutex<[String: CoreMetrics.Gauge]>([:])


    init(region: String) {
        self.region = region
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["zrc_relay_allocation_duration_seconds"] = [1, 10, 60, 300, 1800, 3600, 14_400, 86_400]
        factory.valueHistogramBuckets["zrc_relay_quota_usage_ratio"] = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
        self.factory = factory
        func counter(_ name: String, _ labels: [(String, String)] = []) -> CoreMetrics.Counter {
            CoreMetrics.Counter(label: "zrc_relay_" + name, dimensions: [("region", region)] + labels, factory: factory)
        }
        func gauge(_ name: String, _ labels: [(String, String)] = []) -> CoreMetrics.Gauge {
            CoreMetrics.Gauge(label: "zrc_relay_" + name, dimensions: [("region", region)] + labels, factory: factory)
        }
        activeAllocations = gauge("active_allocations")
        allocations = Dictionary(uniqueKeysWithValues: AllocationOutcome.allCases.map { ($0, counter("allocations_total", [("outcome", $0.rawValue)])) })
        bytes = Dictionary(uniqueKeysWithValues: RelayCounters.Transport.allCases.map { ($0, counter("bytes_forwarded_total", [("transport", $0.rawValue)])) })
        packets = Dictionary(uniqueKeysWithValues: RelayCounters.Transport.allCases.map { ($0, counter("packets_forwarded_total", [("transport", $0.rawValue)])) })
        dropped = Dictionary(uniqueKeysWithValues: DropReason.allCases.map { ($0, counter("packets_dropped_total", [("reason", $0.rawValue)])) })
        connections = Dictionary(uniqueKeysWithValues: RelayCounters.Transport.allCases.map { ($0, gauge("connections", [("transport", $0.rawValue)])) })
        rateLimitHits = Dictionary(uniqueKeysWithValues: RelayCounters.RateLimitKind.allCases.map { ($0, counter("rate_limit_hits_total", [("kind", $0.rawValue)])) })
        errors = Dictionary(uniqueKeysWithValues: RelayErrorCode.all.filter { $0 != .replaced }.map { ($0, counter("errors_total", [("code", $0.name)])) })
        verifications = Dictionary(uniqueKeysWithValues: RelayCounters.TokenVerificationResult.allCases.map {
            ($0, counter("token_verifications_total", [("result", $0.label)]))
        })
        duration = CoreMetrics.Recorder(label: "zrc_relay_allocation_duration_seconds", dimensions: [("region", region)], aggregate: true, factory: factory)
        endedIDsForgotten = counter("ended_ids_forgotten_total")
        quotaUsage = CoreMetrics.Recorder(label: "zrc_relay_quota_usage_ratio", dimensions: [("region", region)], aggregate: true, factory: factory)
    }

    /// Folds a new snapshot in and renders Prometheus text.
    func render(_ now: RelayCounters) -> String {
        last.withLock { previous in
            func delta<K: Hashable>(_ new: [K: UInt64], _ old: [K: UInt64], _ counters: [K: CoreMetrics.Counter]) {
                for (key, counter) in counters {
                    let d = (new[key] ?? 0) &- (old[key] ?? 0)
                    if d > 0, d < UInt64(Int64.max) { counter.increment(by: Int64(d)) }
                }
            }
            activeAllocations.record(now.activeAllocations)
            delta(now.allocationsEnded, previous.allocationsEnded, allocations)
            delta(now.bytesForwarded, previous.bytesForwarded, bytes)
            delta(now.packetsForwarded, previous.packetsForwarded, packets)
            delta(now.packetsDropped, previous.packetsDropped, dropped)
            delta(now.rateLimitHits, previous.rateLimitHits, rateLimitHits)
            delta(now.errors, previous.errors, errors)
            delta(now.tokenVerifications, previous.tokenVerifications, verifications)
            let forgotten = now.endedIDsForgotten &- previous.endedIDsForgotten
            if forgotten > 0, forgotten < UInt64(Int64.max) { endedIDsForgotten.increment(by: Int64(forgotten)) }
            for (transport, gauge) in connections { gauge.record(now.connections[transport] ?? 0) }
            sharedStateErrors.withLock { counters in
                for (operation, total) in now.sharedStateErrors {
                    let d = total &- (previous.sharedStateErrors[operation] ?? 0)
                    guard d > 0, d < UInt64(Int64.max) else { continue }
                    let counter = counters[operation] ?? CoreMetrics.Counter(
                        label: "zrc_relay_shared_state_errors_total", dimensions: [("region", region), ("op", operation)], factory: factory)
                    counters[operation] = counter
                    counter.increment(by: Int64(d))
                }
            }
            fleetInstances.withLock { gauges in
                for region in Set(gauges.keys).union(now.fleetInstances.keys) {
                    let gauge = gauges[region] ?? CoreMetrics.Gauge(
                        label: "zrc_relay_fleet_instances", dimensions: [("region", region)], factory: factory)
                    gauges[region] = gauge
                    gauge.record(now.fleetInstances[region] ?? 0)
                }
            }
            let ended = now.allocationsEnded.values.reduce(0, +)
            let endedBefore = previous.allocationsEnded.values.reduce(0, +)
            // The loop keeps the most recent durations; record the ones not seen yet.
            let newEnded = Int(min(UInt64(now.endedDurations.count), ended &- endedBefore))
            for value in now.endedDurations.suffix(newEnded) { duration.record(value) }
            let newUsage = Int(min(UInt64(now.endedQuotaUsage.count), now.quotaUsageSamples &- previous.quotaUsageSamples))
            for value in now.endedQuotaUsage.suffix(newUsage) { quotaUsage.record(value) }
            previous = now
        }
        return registry.emitToString()
    }
}
