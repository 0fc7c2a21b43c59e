import NIOCore

@testable import Yamux

/// A fixed base instant for tests; later instants are offsets from it.
let testEpoch = ContinuousClock.now

/// Deterministic pseudo-random bytes (xorshift64*), so bulk transfers are reproducible.
struct TestRandom {
    private var state: UInt64

    init(seed: UInt64) {
        self.state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed
    }

    mutating func next() -> UInt64 {
        self.state ^= self.state >> 12
        self.state ^= self.state << 25
        self.state ^= self.state >> 27
        return self.state &* 2_685_821_657_736_338_717
    }

    mutating func bytes(_ count: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(count)
        var left = count
        while left >= 8 {
            buffer.writeInteger(self.next())
            left -= 8
        }
        for _ in 0..<left {
            buffer.writeInteger(UInt8(truncatingIfNeeded: self.next()))
        }
        return buffer
    }
}

/// FNV-1a over a buffer's readable bytes: a cheap checksum for transfer tests.
func checksum(_ buffer: ByteBuffer) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    buffer.withUnsafeReadableBytes { bytes in
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
    }
    return hash
}

extension YamuxSession {
    /// Drains every queued action.
    mutating func drainActions() -> [YamuxSessionAction] {
        var actions: [YamuxSessionAction] = []
        while let action = self.nextAction() {
            actions.append(action)
        }
        return actions
    }

    /// Drains and returns only the frames to write.
    mutating func drainFrames() -> [YamuxFrame] {
        self.drainActions().compactMap {
            if case .writeFrame(let frame) = $0 { return frame }
            return nil
        }
    }
}

extension Array where Element == YamuxSessionAction {
    var frames: [YamuxFrame] {
        self.compactMap {
            if case .writeFrame(let frame) = $0 { return frame }
            return nil
        }
    }

    var events: [YamuxSessionAction] {
        self.filter {
            if case .writeFrame = $0 { return false }
            return true
        }
    }
}

func bytes(_ values: [UInt8]) -> ByteBuffer {
    ByteBuffer(bytes: values)
}

func encode(_ frames: [YamuxFrame]) -> ByteBuffer {
    var buffer = ByteBuffer()
    for frame in frames {
        buffer.writeYamuxFrame(frame)
    }
    return buffer
}

/// One side of a back-to-back pair: a session plus a simple application model.
final class TestPeer {
    var session: YamuxSession
    /// Bytes written by this side and not yet delivered to the other.
    var wire = ByteBuffer()
    /// Every non-frame action, in order.
    var events: [YamuxSessionAction] = []
    /// Data received per stream (all of it, for checking).
    var received: [UInt32: ByteBuffer] = [:]
    /// Data received and not yet consumed, per stream.
    var unconsumed: [UInt32: Int] = [:]
    /// The most unconsumed bytes seen on any stream.
    var maximumUnconsumed = 0
    /// Data the application still wants to send, per stream.
    var pendingWrites: [UInt32: ByteBuffer] = [:]
    /// Streams to half-close once their pending writes are out.
    var closeAfterWrites: Set<UInt32> = []
    /// Consume at most this many bytes per stream per round (nil: everything at once).
    var consumePerRound: Int?
    var autoAccept = true
    /// Echo data back on every stream the peer opened.
    var echo = false
    var halfClosed: Set<UInt32> = []
    var closed: Set<UInt32> = []
    var reset: [UInt32: YamuxStreamResetReason] = [:]
    var opened: [UInt32] = []
    var closeReason: YamuxSessionCloseReason?
    var framesWritten = 0

    init(role: YamuxRole, configuration: YamuxConfiguration = YamuxConfiguration(keepAliveInterval: nil)) {
        self.session = YamuxSession(role: role, configuration: configuration, now: testEpoch)
    }

    func open() throws -> UInt32 {
        let id = try self.session.openStream()
        self.process()
        return id
    }

    /// Queues data on a stream and writes what the window allows.
    func send(_ data: ByteBuffer, on streamID: UInt32, thenClose: Bool = false) {
        self.pendingWrites[streamID, default: ByteBuffer()].writeImmutableBuffer(data)
        if thenClose {
            self.closeAfterWrites.insert(streamID)
        }
        self.flushWrites(streamID)
        self.process()
    }

    func flushWrites(_ streamID: UInt32) {
        if var pending = self.pendingWrites[streamID], pending.readableBytes > 0 {
            guard let accepted = try? self.session.write(streamID: streamID, pending) else {
                self.pendingWrites[streamID] = nil
                return
            }
            pending.moveReaderIndex(forwardBy: accepted)
            self.pendingWrites[streamID] = pending
        }
        if self.pendingWrites[streamID].map({ $0.readableBytes == 0 }) ?? true,
            self.closeAfterWrites.remove(streamID) != nil
        {
            try? self.session.closeWrite(streamID: streamID)
        }
    }

    /// Consumes received data per the consumption policy.
    func consume() {
        for (streamID, count) in self.unconsumed.sorted(by: { $0.key < $1.key }) where count > 0 {
            let amount = min(count, self.consumePerRound ?? count)
            self.unconsumed[streamID] = count - amount
            self.session.consumed(streamID: streamID, count: amount)
        }
        self.process()
    }

    /// Carries out every queued action.
    func process() {
        while let action = self.session.nextAction() {
            switch action {
            case .writeFrame(let frame):
                self.wire.writeYamuxFrame(frame)
                self.framesWritten += 1
                continue
            case .streamOpened(let id):
                self.opened.append(id)
                if self.autoAccept {
                    try? self.session.acceptStream(id)
                }
            case .streamData(let id, let data):
                self.received[id, default: ByteBuffer()].writeImmutableBuffer(data)
                let total = self.unconsumed[id, default: 0] + data.readableBytes
                self.unconsumed[id] = total
                self.maximumUnconsumed = max(self.maximumUnconsumed, total)
                if self.echo {
                    self.pendingWrites[id, default: ByteBuffer()].writeImmutableBuffer(data)
                    self.flushWrites(id)
                }
            case .streamHalfClosed(let id):
                self.halfClosed.insert(id)
                if self.echo {
                    self.closeAfterWrites.insert(id)
                    self.flushWrites(id)
                }
            case .streamClosed(let id):
                self.closed.insert(id)
                self.unconsumed[id] = nil
            case .streamReset(let id, let reason):
                self.reset[id] = reason
                self.unconsumed[id] = nil
                self.pendingWrites[id] = nil
            case .windowOpened(let id):
                self.flushWrites(id)
            case .sessionClosed(let reason):
                self.closeReason = reason
            case .pingRTT, .pingTimedOut, .goAwayReceived:
                break
            }
            self.events.append(action)
        }
    }

    func takeWire() -> ByteBuffer {
        let bytes = self.wire
        self.wire = ByteBuffer()
        return bytes
    }
}

/// Two sessions wired to each other in memory (like NIOSSH's BackToBackEmbeddedChannel).
struct BackToBack {
    let client: TestPeer
    let server: TestPeer

    init(
        clientConfiguration: YamuxConfiguration = YamuxConfiguration(keepAliveInterval: nil),
        serverConfiguration: YamuxConfiguration = YamuxConfiguration(keepAliveInterval: nil)
    ) {
        self.client = TestPeer(role: .client, configuration: clientConfiguration)
        self.server = TestPeer(role: .server, configuration: serverConfiguration)
    }

    /// Moves bytes both ways, consuming per each peer's policy, until nothing moves.
    /// - Returns: The number of rounds.
    @discardableResult
    func interact(maximumRounds: Int = 100_000, now: ContinuousClock.Instant = testEpoch, eachRound: () -> Void = {}) -> Int {
        var rounds = 0
        while rounds < maximumRounds {
            rounds += 1
            self.client.process()
            self.server.process()
            let toServer = self.client.takeWire()
            let toClient = self.server.takeWire()
            if toServer.readableBytes > 0 {
                self.server.session.receive(toServer, now: now)
            }
            if toClient.readableBytes > 0 {
                self.client.session.receive(toClient, now: now)
            }
            self.client.process()
            self.server.process()
            let unconsumedBefore = self.client.unconsumed.values.reduce(0, +) + self.server.unconsumed.values.reduce(0, +)
            self.client.consume()
            self.server.consume()
            eachRound()
            let unconsumedAfter = self.client.unconsumed.values.reduce(0, +) + self.server.unconsumed.values.reduce(0, +)
            if toServer.readableBytes == 0 && toClient.readableBytes == 0 && self.client.wire.readableBytes == 0
                && self.server.wire.readableBytes == 0 && unconsumedBefore == unconsumedAfter
            {
                break
            }
        }
        return rounds
    }
}
