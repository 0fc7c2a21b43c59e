import ArgumentParser
import Foundation
import Logging
import QUICTransport
import RelayClient
import RelayConfig
import RelayCore

extension ClientCommand {
    /// `zrc-relay client bench`: load through the relay and what it costs (DESIGN §10).
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drive N paired allocations at a fixed total rate; report forwarded rate, loss, RTT and relay CPU per datagram.",
            discussion: """
                Mints one token per allocation with --key (the relay must trust its public key), pairs both peers \
                of each allocation on one local QUIC endpoint, then sends --rate datagrams/s in total for --duration. \
                With --relay-pid, reads the relay's utime+stime from /proc over the measured window and divides by \
                the datagrams it forwarded; RSS is VmRSS at the end. --rate 0 only establishes and holds the pairs \
                (memory per allocation).
                """)

        @OptionGroup var target: RelayTarget

        @Option(help: "Device key file (token keygen) whose tokens the relay trusts.")
        var key: String

        @Option(help: "Paired allocations (2 QUIC connections each).")
        var allocations: Int = 1

        @Option(help: "Datagrams per second, all allocations together (0: establish and hold only).")
        var rate: Int = 1000

        @Option(help: "Payload bytes per datagram (16…1200).")
        var size: Int = 1200

        @Option(help: "How long to send, e.g. 5s.")
        var duration: String = "5s"

        @Option(help: "oneway (A→B) or rtt (B echoes to A; RTT percentiles).")
        var mode: String = "oneway"

        @Option(help: "The relay's process id, for CPU µs per forwarded datagram and RSS.")
        var relayPid: Int?

        @Option(help: "How the generator's QUIC peers acknowledge: standard (RFC 9000 §13.2: every second packet, else within max_ack_delay, as ordinary peers do) or coalescing (the relay's own lighter policy: every 8th packet or 20 ms).")
        var ack: String = "standard"

        @Option(help: "QUIC generator endpoints (each its own UDP socket and thread); allocations and rate are split between them.")
        var generators: Int = 1

        @Flag(help: "Print one JSON line instead of text.")
        var json = false

        func validate() throws {
            guard (1...100_000).contains(allocations) else { throw ValidationError("--allocations must be 1…100000") }
            guard (0...10_000_000).contains(rate) else { throw ValidationError("--rate must be 0…10000000") }
            guard (16...1200).contains(size) else { throw ValidationError("--size must be 16…1200") }
            guard let d = ConfigUnits.duration(duration), d > .zero else { throw ValidationError("--duration: '\(duration)' is not a duration") }
            guard RelayBench.Plan.Mode(rawValue: mode) != nil else { throw ValidationError("--mode must be oneway or rtt") }
            guard ackPolicy != nil else { throw ValidationError("--ack must be standard or coalescing") }
            guard (1...8).contains(generators), generators <= allocations else {
                throw ValidationError("--generators must be 1…8 and at most --allocations")
            }
            if target.transport == .tcp || target.transport == .websocket || target.websocketURL != nil {
                guard mode == "oneway" else { throw ValidationError("--transport tcp|websocket: --mode oneway only") }
                guard allocations <= 1000, rate > 0 else { throw ValidationError("--transport tcp|websocket: 1…1000 allocations and --rate > 0") }
            }
            if let relayPid, !FileManager.default.fileExists(atPath: "/proc/\(relayPid)/stat") {
                throw ValidationError("--relay-pid \(relayPid): no such process")
            }
        }

        var ackPolicy: QUICConfiguration.AckPolicy? {
            switch ack {
            case "standard": .standard
            case "coalescing": .coalescing
            default: nil
            }
        }

        func run() async throws {
            let (address, name) = try target.resolve()
            let signingKey = try TokenCommand.readKey(key)
            let plan = RelayBench.Plan(allocations: allocations, rate: rate, size: size, mode: RelayBench.Plan.Mode(rawValue: mode) ?? .oneway)
            let window = ConfigUnits.duration(duration) ?? .seconds(5)

            var logger = Logger(label: "zrc-relay-bench")
            logger.logLevel = .error
            var quic = QUICConfiguration()
            quic.trustedCAPath = target.ca
            quic.tickInterval = .milliseconds(1)
            quic.keepAliveInterval = .seconds(15)
            quic.ackPolicy = ackPolicy ?? .standard
            let any = address.host.isV4 ? TransportAddress(host: .v4(0, 0, 0, 0), port: 0)
                                        : TransportAddress(host: .v6([UInt8](repeating: 0, count: 16), scopeID: 0), port: 0)
            // One endpoint per QUIC generator, each with its own UDP socket and thread (the
            // stream transports use one, for its loop).
            let overStreams = target.transport == .tcp || target.transport == .websocket || target.websocketURL != nil
            var endpoints: [RelayClientEndpoint] = []
            defer { for endpoint in endpoints { endpoint.stop() } }
            for _ in 0..<(overStreams ? 1 : generators) {
                let endpoint = try RelayClientEndpoint(configuration: quic, bindAddress: any, logger: logger)
                try endpoint.start()
                endpoints.append(endpoint)
            }

            let now = UInt64(Date().timeIntervalSince1970)
            var tokens: [(token: [UInt8], a: PeerID, b: PeerID)] = []
            for index in 0..<allocations {
                let a = PeerID(high: .random(in: 0...UInt64.max), low: UInt64(2 * index))
                let b = PeerID(high: .random(in: 0...UInt64.max), low: UInt64(2 * index + 1))
                let minted = try RelayTokenV1.mint(
                    signingKey: signingKey, audience: nil,
                    allocationID: AllocationID(high: .random(in: 0...UInt64.max), low: .random(in: 0...UInt64.max)),
                    peerA: a, peerB: b, issuedAt: now - 5, expiresAt: now + 3600, tier: .unlimited)
                tokens.append((minted.bytes, a, b))
            }

            let rssBefore = relayPid.flatMap(ProcessStats.rssKiB)
            if overStreams {
                let streams = StreamBench(target: target, transport: target.websocketURL != nil ? .websocket : target.transport, plan: plan)
                let pairs: [StreamBench.Pair]
                do {
                    pairs = try await streams.establish(endpoint: endpoints[0], address: address, serverName: name, tokens: tokens)
                } catch {
                    stderr("bench: \(error)")
                    throw ExitCode(1)
                }
                try await Task.sleep(for: .milliseconds(300))
                let cpuBefore = relayPid.flatMap(ProcessStats.cpuMicroseconds)
                let started = ContinuousClock.now
                let tally = try await streams.run(pairs: pairs, duration: window)
                let measured = ContinuousClock.now - started
                let cpuAfter = relayPid.flatMap(ProcessStats.cpuMicroseconds)
                let rssAfter = relayPid.flatMap(ProcessStats.rssKiB)
                streams.close(pairs)
                let report = BenchReport(
                    plan: plan, durationSeconds: window / .seconds(1),
                    tally: tally, measuredSeconds: measured / .seconds(1), relayCPUMicroseconds: zip(cpuBefore, cpuAfter).map { $1 - $0 },
                    relayRSSBeforeKiB: rssBefore, relayRSSKiB: rssAfter, generatorCPUMicroseconds: nil, generatorThreads: 1)
                print(json ? report.json : report.text)
                return
            }
            // One RelayBench per generator endpoint; pairs and rate are dealt out between them.
            let benches = endpoints.enumerated().map { index, generator in
                let share = plan.share(index, of: generators)
                return (RelayBench(endpoint: generator, plan: share.plan), tokens[share.pairs])
            }
            do {
                for (bench, mine) in benches {
                    try await bench.establish(relay: address, serverName: name, tokens: Array(mine))
                }
            } catch {
                stderr("bench: \(error)")
                throw ExitCode(1)
            }
            try await Task.sleep(for: .milliseconds(300))  // handshake leftovers settle
            let cpuBefore = relayPid.flatMap(ProcessStats.cpuMicroseconds)
            let ownBefore = ProcessStats.cpuMicroseconds(pid: Int(getpid()))
            let started = ContinuousClock.now
            let tally = try await withThrowingTaskGroup(of: RelayBench.Tally.self) { group in
                for (bench, _) in benches { group.addTask { try await bench.run(duration: window) } }
                var total = RelayBench.Tally()
                for try await one in group { total.add(one) }
                return total
            }
            let measured = ContinuousClock.now - started
            let cpuAfter = relayPid.flatMap(ProcessStats.cpuMicroseconds)
            let ownAfter = ProcessStats.cpuMicroseconds(pid: Int(getpid()))
            let rssAfter = relayPid.flatMap(ProcessStats.rssKiB)
            for (bench, _) in benches { await bench.close() }

            let report = BenchReport(
                plan: plan, durationSeconds: window / .seconds(1),
                tally: tally, measuredSeconds: measured / .seconds(1),
                relayCPUMicroseconds: zip(cpuBefore, cpuAfter).map { $1 - $0 },
                relayRSSBeforeKiB: rssBefore, relayRSSKiB: rssAfter,
                generatorCPUMicroseconds: zip(ownBefore, ownAfter).map { $1 - $0 }, generatorThreads: generators)
            print(json ? report.json : report.text)
        }
    }
}

/// `zip` for two optionals.
private func zip<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}

extension TransportAddress.Host {
    var isV4: Bool { if case .v4 = self { true } else { false } }
}

/// Reads another process's CPU time and RSS from /proc (Linux).
enum ProcessStats {
    /// utime + stime in microseconds.
    static func cpuMicroseconds(pid: Int) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // Fields after "comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (utime + stime) / ticks * 1e6
    }

    /// VmRSS in KiB.
    static func rssKiB(pid: Int) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }
}

/// The figures of one bench run.
struct BenchReport {
    let plan: RelayBench.Plan
    let durationSeconds: Double
    let tally: RelayBench.Tally
    let measuredSeconds: Double
    let relayCPUMicroseconds: Double?
    let relayRSSBeforeKiB: Int?
    let relayRSSKiB: Int?
    /// This process's own CPU time over the window (all generator threads), to tell whether the
    /// generator rather than the relay was the limit.
    let generatorCPUMicroseconds: Double?
    /// Generator endpoints (threads) that shared the load.
    let generatorThreads: Int

    /// Whether the generator rather than the relay was the limit (DESIGN §10 v3): its own
    /// sending connections refused over 1 % of the datagrams (their congestion control or
    /// queue), or its threads were busy over 90 % of the time. `nil` when not measured.
    var generatorLimited: Bool? {
        let refused = tally.sendFailures * 100 > tally.sent
        guard let cpu = generatorCPUPercent else { return refused ? true : nil }
        let cores = Double(min(generatorThreads, ProcessInfo.processInfo.activeProcessorCount))
        return refused || cpu >= 90 * cores
    }

    /// The generator's CPU over the measured window, in % of one core.
    var generatorCPUPercent: Double? {
        guard let generatorCPUMicroseconds, measuredSeconds > 0 else { return nil }
        return generatorCPUMicroseconds / (measuredSeconds * 1e6) * 100
    }

    var loss: Double { tally.sent == 0 ? 0 : max(0, 1 - Double(tally.received) / Double(tally.sent)) }
    /// Forwarded datagrams per second of the sending window (the drain's stragglers included).
    var forwardedRate: Double { durationSeconds > 0 ? Double(tally.forwarded) / durationSeconds : 0 }
    var cpuPerDatagram: Double? {
        guard let relayCPUMicroseconds, tally.forwarded > 0 else { return nil }
        return relayCPUMicroseconds / Double(tally.forwarded)
    }

    func percentile(_ p: Double) -> Double? {
        guard !tally.rttMicroseconds.isEmpty else { return nil }
        let sorted = tally.rttMicroseconds.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)
        return Double(sorted[max(0, index)])
    }

    var json: String {
        func number(_ value: Double?) -> String { value.map { String(format: "%.3f", $0) } ?? "null" }
        func integer(_ value: Int?) -> String { value.map(String.init) ?? "null" }
        return "{\"target\":\"zrc-relay\",\"mode\":\"\(plan.mode.rawValue)\",\"allocations\":\(plan.allocations),"
            + "\"rate\":\(plan.rate),\"size\":\(plan.size),\"duration_s\":\(number(durationSeconds)),"
            + "\"sent\":\(tally.sent),\"received\":\(tally.received),\"forwarded\":\(tally.forwarded),"
            + "\"send_failures\":\(tally.sendFailures),\"forwarded_rate\":\(number(forwardedRate)),\"loss\":\(String(format: "%.6f", loss)),"
            + "\"rtt_p50_us\":\(number(percentile(0.5))),\"rtt_p99_us\":\(number(percentile(0.99))),"
            + "\"rtt_p999_us\":\(number(percentile(0.999))),\"relay_cpu_us_per_datagram\":\(number(cpuPerDatagram)),"
            + "\"relay_rss_before_kib\":\(integer(relayRSSBeforeKiB)),\"relay_rss_kib\":\(integer(relayRSSKiB)),"
            + "\"generator_cpu_pct\":\(number(generatorCPUPercent)),"
            + "\"generator_limited\":\(generatorLimited.map { $0 ? "true" : "false" } ?? "null")}"
    }

    var text: String {
        var lines = [
            "allocations \(plan.allocations) rate \(plan.rate)/s size \(plan.size) B mode \(plan.mode.rawValue) duration \(durationSeconds) s",
            "sent \(tally.sent) received \(tally.received) forwarded \(tally.forwarded) loss \(String(format: "%.2f%%", loss * 100)) forwarded_rate \(String(format: "%.0f", forwardedRate))/s",
        ]
        if let p50 = percentile(0.5), let p99 = percentile(0.99), let p999 = percentile(0.999) {
            lines.append("rtt_us p50 \(Int(p50)) p99 \(Int(p99)) p999 \(Int(p999))")
        }
        if let cpu = cpuPerDatagram { lines.append(String(format: "relay cpu %.2f µs/datagram", cpu)) }
        if let cpu = generatorCPUPercent { lines.append(String(format: "generator cpu %.0f%% of one core", cpu)) }
        if generatorLimited == true {
            lines.append("the generator, not the relay, was the limit (\(tally.sendFailures) datagrams refused by its own connections)")
        }
        if let rss = relayRSSKiB {
            lines.append("relay rss \(rss) KiB" + (relayRSSBeforeKiB.map { " (before: \($0) KiB)" } ?? ""))
        }
        return lines.joined(separator: "\n")
    }
}
