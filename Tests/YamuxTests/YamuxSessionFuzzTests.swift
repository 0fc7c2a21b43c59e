import NIOCore
import Testing

@testable import Yamux

/// Random frame sequences from a hostile peer: the session must only ever produce actions,
/// never trap, and must keep every stream within its window.
@Suite struct YamuxSessionFuzzTests {
    static func randomFrame(_ random: inout TestRandom) -> YamuxFrame {
        let streamID = UInt32(random.next() % 12)
        let flags = YamuxFrameFlags(rawValue: UInt16(truncatingIfNeeded: random.next() % 16))
        switch random.next() % 6 {
        case 0, 1:
            let length = Int(random.next() % 3) == 0 ? Int(random.next() % 300_000) : Int(random.next() % 64)
            return .data(streamID: streamID, flags: flags, payload: ByteBuffer(repeating: 0x5A, count: length))
        case 2, 3:
            let delta = random.next() % 4 == 0 ? UInt32.max : UInt32(truncatingIfNeeded: random.next() % 500_000)
            return .windowUpdate(streamID: streamID, flags: flags, delta: delta)
        case 4:
            return .ping(flags: flags, opaque: UInt32(truncatingIfNeeded: random.next()))
        default:
            return .goAway(YamuxGoAwayCode(networkCode: UInt32(random.next() % 4)))
        }
    }

    @Test(arguments: [YamuxRole.client, .server])
    func hostileFrameSequencesNeverTrap(role: YamuxRole) throws {
        var random = TestRandom(seed: role == .client ? 1 : 2)
        var endedSessions = 0
        for _ in 0..<300 {
            var session = YamuxSession(role: role, configuration: YamuxConfiguration(keepAliveInterval: .seconds(1)), now: testEpoch)
            var now = testEpoch
            for step in 0..<40 {
                if random.next() % 5 == 0 {
                    _ = try? session.openStream()
                }
                let frame = Self.randomFrame(&random)
                // Half the time through the byte parser, half as parsed frames.
                if step % 2 == 0 {
                    session.receive(encode([frame]), now: now)
                } else {
                    session.receive(frame: frame, now: now)
                }
                now = now + .milliseconds(Int64(random.next() % 700))
                session.tick(now: now)
                while let action = session.nextAction() {
                    switch action {
                    case .streamData(let id, let data):
                        if random.next() % 2 == 0 {
                            session.consumed(streamID: id, count: data.readableBytes)
                        }
                    case .streamOpened(let id):
                        if random.next() % 2 == 0 { try? session.acceptStream(id) }
                    case .windowOpened(let id):
                        _ = try? session.write(streamID: id, ByteBuffer(repeating: 1, count: 1000))
                    default:
                        break
                    }
                }
                for stream in session.streams.values {
                    #expect(stream.receiveWindow.window + stream.receiveWindow.unconsumed <= stream.receiveWindow.targetWindow)
                }
                if !session.isActive { break }
            }
            if !session.isActive { endedSessions += 1 }
        }
        // Most random sequences break the protocol quickly.
        #expect(endedSessions > 100)
    }
}
