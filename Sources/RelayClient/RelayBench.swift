#if canImport(Glibc)
import Glibc
#endif
import QUICTransport
import RelayCore

/// The load generator of `zrc-relay client bench` (DESIGN §10): N paired allocations on one
/// client endpoint (one UDP socket, one loop thread, batched sends), driven at a fixed total
/// rate from the endpoint's tick, counting on the loop thread without locks or per-datagram
/// allocation.
///
/// Payload layout: send time (loop nanoseconds, u64) | sequence (u32) | pair index (u32) |
/// padding. In round-trip mode side B echoes every datagram back to side A.
public final class RelayBench: RelaySessionDelegate, @unchecked Sendable {
    // @unchecked Sendable: all state is confined to the endpoint's loop thread; the async
    // methods hop there.

    /// What to run.
    public struct Plan: Sendable {
        public enum Mode: String, Sendable { case oneway, rtt }
        public var allocations: Int
        /// Datagrams per second, all pairs together; 0 = only establish and hold the pairs.
        public var rate: Int
        public var size: Int
        public var mode: Mode

        public init(allocations: Int, rate: Int, size: Int, mode: Mode) {
            self.allocations = allocations
            self.rate = rate
            self.size = size
            self.mode = mode
        }

        /// Generator `index` of `count`'s part: a contiguous run of the pairs and the same
        /// share of the rate (remainders go to the first generators).
        public func share(_ index: Int, of count: Int) -> (plan: Plan, pairs: Range<Int>) {
            func part(_ total: Int, _ i: Int) -> Int { total / count + (i < total % count ? 1 : 0) }
            let first = (0..<index).reduce(0) { $0 + part(allocations, $1) }
            var plan = self
            plan.allocations = part(allocations, index)
            plan.rate = part(rate, index)
            return (plan, first..<(first + plan.allocations))
        }
    }

    /// Counts of one run.
    public struct Tally: Sendable {
        public var sent = 0
        /// Datagrams that reached the far side (one-way) or came back (round trip).
        public var received = 0
        /// Datagrams the relay delivered to either side (round trip: twice per datagram).
        public var forwarded = 0
        /// Sends refused locally (queue full / too large).
        public var sendFailures = 0
        /// Round-trip times in microseconds (round-trip mode).
        public var rttMicroseconds: [UInt32] = []

        public init() {}

        /// Adds another generator's counts to these.
        public mutating func add(_ other: Tally) {
            sent += other.sent
            received += other.received
            forwarded += other.forwarded
            sendFailures += other.sendFailures
            rttMicroseconds += other.rttMicroseconds
        }
    }

    private let endpoint: RelayClientEndpoint
    private let plan: Plan
    private var sidesA: [RelaySession] = []
    private var sidesB: [RelaySession] = []
    /// Which side of which pair a session is.
    private var roles: [ObjectIdentifier: (pair: Int, isSideB: Bool)] = [:]
    private var waiting = 0
    private var paired = 0
    private var failures: [String] = []
    private var running = false
    private var startedAt: UInt64 = 0
    private var tally = Tally()
    private var nextPair = 0
    private var payload: [UInt8]
    private static let maximumSamples = 2_000_000

    public init(endpoint: RelayClientEndpoint, plan: Plan) {
        self.endpoint = endpoint
        self.plan = plan
        self.payload = [UInt8](repeating: 0, count: max(16, plan.size))
        tally.rttMicroseconds.reserveCapacity(min(Self.maximumSamples, plan.rate * 60))
    }

    private func onLoop<T: Sendable>(_ body: @escaping @Sendable (RelayBench) -> T) async -> T {
        await withCheckedContinuation { continuation in
            endpoint.execute { [self] _ in continuation.resume(returning: body(self)) }
        }
    }

    /// Opens side A of every pair, then side B, in batches; returns when all are paired or
    /// `timeout` passed (then throws with what went wrong).
    public func establish(relay: TransportAddress, serverName: String?, tokens: [(token: [UInt8], a: PeerID, b: PeerID)],
                          timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        let batch = 100
        for side in 0..<2 {
            var opened = 0
            while opened < tokens.count {
                let range = opened..<min(tokens.count, opened + batch)
                await onLoop { bench in
                    for index in range {
                        let (token, a, b) = tokens[index]
                        guard let session = bench.endpoint.open(relay: relay, serverName: serverName, peerID: side == 0 ? a : b,
                                                                token: token, delegate: bench) else {
                            bench.failures.append("cannot open connection \(index)")
                            continue
                        }
                        bench.roles[ObjectIdentifier(session)] = (index, side == 1)
                        if side == 0 { bench.sidesA.append(session) } else { bench.sidesB.append(session) }
                    }
                }
                opened = range.upperBound
                // Let this batch's handshakes finish before the next (bounded in-flight).
                while ContinuousClock.now < deadline {
                    let (progress, failed) = await onLoop { bench in
                        (side == 0 ? bench.waiting + bench.paired : bench.paired, bench.failures)
                    }
                    if !failed.isEmpty { throw BenchError(failed.prefix(3).joined(separator: "; ")) }
                    if progress >= opened { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
        }
        while ContinuousClock.now < deadline {
            if await onLoop({ $0.paired }) >= tokens.count { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchError("only \(await onLoop { $0.paired }) of \(tokens.count) pairs paired in time")
    }

    /// Sends for `duration` at the plan's rate, then waits `drain` for stragglers.
    public func run(duration: Duration, drain: Duration = .milliseconds(500)) async throws -> Tally {
        await onLoop { bench in
            bench.running = true
            bench.startedAt = bench.endpoint.endpoint.loopTime
            bench.endpoint.tickHandler = { _ in bench.tick() }
        }
        try await Task.sleep(for: duration)
        await onLoop { bench in
            bench.running = false
            bench.endpoint.tickHandler = nil
        }
        try await Task.sleep(for: drain)
        return await onLoop { $0.tally }
    }

    /// Releases every allocation (so the relay frees them at once), then closes.
    public func close() async {
        await onLoop { bench in
            for session in bench.sidesA { session.release() }
        }
        try? await Task.sleep(for: .milliseconds(200))
        await onLoop { bench in
            for session in bench.sidesA + bench.sidesB { session.close() }
        }
    }

    // MARK: Loop thread

    private func tick() {
        guard running, plan.rate > 0, !sidesA.isEmpty else { return }
        let now = endpoint.endpoint.loopTime
        let elapsed = now &- startedAt
        let due = Int((Double(elapsed) / 1e9 * Double(plan.rate)).rounded(.down)) - tally.sent
        // After a stall, do not burst more than 20 ms worth at once.
        let count = min(due, max(1, plan.rate / 50))
        guard count > 0 else { return }
        let pairs = sidesA.count
        for _ in 0..<count {
            let index = nextPair
            nextPair = (nextPair + 1) % pairs
            let sequence = UInt32(truncatingIfNeeded: tally.sent)
            payload.withUnsafeMutableBytes { bytes in
                bytes.storeBytes(of: now.bigEndian, toByteOffset: 0, as: UInt64.self)
                bytes.storeBytes(of: sequence.bigEndian, toByteOffset: 8, as: UInt32.self)
                bytes.storeBytes(of: UInt32(index).bigEndian, toByteOffset: 12, as: UInt32.self)
            }
            tally.sent += 1
            if case .failure = sidesA[index].send(payload) { tally.sendFailures += 1 }
        }
    }

    public func session(_ session: RelaySession, didReceive frame: ControlFrame) {
        switch frame {
        case .peer(.waiting): waiting += 1
        case .peer(.paired): paired += 1
        case .error(let code, let reason): failures.append("\(code.name): \(reason)")
        default: break
        }
    }

    public func session(_ session: RelaySession, didReceiveDatagram payload: UnsafeRawBufferPointer) {
        guard payload.count >= 16 else { return }
        let isSideB = roles[ObjectIdentifier(session)]?.isSideB ?? false
        tally.forwarded += 1
        switch plan.mode {
        case .oneway:
            tally.received += 1
        case .rtt:
            if isSideB {
                session.send(payload)
            } else {
                tally.received += 1
                let sentAt = UInt64(bigEndian: payload.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
                let rtt = (MonotonicClock.now() &- sentAt) / 1000
                if tally.rttMicroseconds.count < Self.maximumSamples {
                    tally.rttMicroseconds.append(UInt32(clamping: rtt))
                }
            }
        }
    }

    public func sessionClosed(_ session: RelaySession, reason: QUICCloseReason) {
        if running { failures.append("connection closed: \(reason)") }
    }
}

/// A benchmark set-up failure.
public struct BenchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

