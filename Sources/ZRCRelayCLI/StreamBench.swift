import ArgumentParser
import Foundation
import QUICTransport
import RelayClient
import RelayCore
import Synchronization
import WebSocketTransport

/// The load generator of `client bench --transport tcp|websocket`: N pairs over the TCP
/// fallback or WebSocket (async `RelayClient` sessions, one connection per peer), side A
/// sending at the total rate in 1 ms steps, side B counting. One-way only; the report is the
/// same as over QUIC, so the three transports compare in one run of `tools/bench/transports`.
struct StreamBench {
    let target: RelayTarget
    let transport: RelayTarget.TransportChoice
    let plan: RelayBench.Plan

    struct Pair {
        let a: RelayClient
        let b: RelayClient
    }

    func establish(endpoint: RelayClientEndpoint, address: TransportAddress, serverName: String?,
                   tokens: [(token: [UInt8], a: PeerID, b: PeerID)]) async throws -> [Pair] {
        let options = try target.sessionOptions(serverName: serverName)
        func open(_ peer: PeerID, _ token: [UInt8]) async throws -> RelayClient {
            switch transport {
            case .websocket:
                return try await RelayClient.connectWebSocket(client: endpoint, address: target.websocketAddress(for: address),
                                                              serverName: serverName, peerID: peer,
                                                              token: token, caPath: target.ca, proxy: options.proxy)
            default:
                return try await RelayClient.connectTCP(client: endpoint, relay: address, serverName: serverName, peerID: peer,
                                                        token: token, tls: !target.plainTcp, caPath: target.ca, proxy: options.proxy)
            }
        }
        var pairs: [Pair] = []
        for entry in tokens {
            let a = try await open(entry.a, entry.token)
            let b = try await open(entry.b, entry.token)
            for side in [a, b] {
                let paired = await side.next(timeout: .seconds(10)) { event in
                    if case .frame(.peer(.paired)) = event { return true }
                    if case .frame(.error) = event { return true }
                    if case .closed = event { return true }
                    return false
                }
                guard case .frame(.peer(.paired))? = paired else { throw ValidationError("bench: a pair did not pair: \(String(describing: paired))") }
            }
            pairs.append(Pair(a: a, b: b))
        }
        return pairs
    }

    func run(pairs: [Pair], duration: Duration) async throws -> RelayBench.Tally {
        let received = ReceivedCounter()
        let counters = pairs.map { pair in
            Task {
                for await event in pair.b.events {
                    if case .datagram = event { received.value.add(1, ordering: .relaxed) }
                }
            }
        }
        var tally = RelayBench.Tally()
        let payload = [UInt8](repeating: 0x5A, count: plan.size)
        let clock = ContinuousClock()
        let start = clock.now
        var next = 0
        var owed = 0.0
        let perMillisecond = Double(plan.rate) / 1000
        while clock.now - start < duration {
            owed += perMillisecond
            let count = Int(owed)
            owed -= Double(count)
            var batches = [[[UInt8]]](repeating: [], count: pairs.count)
            for _ in 0..<count {
                batches[next].append(payload)
                next = (next + 1) % pairs.count
            }
            for (index, batch) in batches.enumerated() where !batch.isEmpty { pairs[index].a.send(batch: batch) }
            tally.sent += count
            try await Task.sleep(until: start + .milliseconds(Int64((clock.now - start).components.seconds * 1000
                + (clock.now - start).components.attoseconds / 1_000_000_000_000_000) + 1), clock: clock)
        }
        // Stragglers: up to 2 s for what is still in flight.
        let drainUntil = clock.now + .seconds(2)
        while received.value.load(ordering: .relaxed) < tally.sent, clock.now < drainUntil {
            try await Task.sleep(for: .milliseconds(20))
        }
        for counter in counters { counter.cancel() }
        tally.received = received.value.load(ordering: .relaxed)
        tally.forwarded = tally.received
        return tally
    }

    func close(_ pairs: [Pair]) {
        for pair in pairs {
            pair.a.release()
            pair.a.close()
            pair.b.close()
        }
    }
}

/// Datagrams counted by the receiving sides.
final class ReceivedCounter: Sendable {
    let value = Atomic<Int>(0)
}
