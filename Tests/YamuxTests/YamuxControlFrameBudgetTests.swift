import NIOCore
import Testing

@testable import Yamux

/// The control-frame budget: floods of frames that cost work without data end the session.
@Suite struct YamuxControlFrameBudgetTests {
    static let small = YamuxConfiguration(keepAliveInterval: nil, controlFrameBurst: 10, controlFramesPerSecond: 5)

    func serverFed(_ frames: [YamuxFrame], at now: ContinuousClock.Instant = testEpoch,
                   configuration: YamuxConfiguration = Self.small) -> (YamuxSession, [YamuxSessionAction]) {
        var session = YamuxSession(role: .server, configuration: configuration, now: testEpoch)
        var actions: [YamuxSessionAction] = []
        for frame in frames {
            session.receive(frame: frame, now: now)
            actions += session.drainActions()
        }
        return (session, actions)
    }

    func endedWithFlood(_ actions: [YamuxSessionAction]) -> Bool {
        guard case .sessionClosed(.error(let error)) = actions.last else { return false }
        return error.code == .controlFrameFlood && actions.frames.last == .goAway(.protocolError)
    }

    @Test func aPingFloodEndsTheSessionAfterTheBurst() {
        let (session, actions) = serverFed((0..<11).map { .ping(flags: .syn, opaque: UInt32($0)) })
        #expect(!session.isActive)
        #expect(endedWithFlood(actions))
        #expect(actions.frames.filter { $0.header.type == .ping }.count == 10)
    }

    @Test func theBudgetRefillsOverTime() {
        var session = YamuxSession(role: .server, configuration: Self.small, now: testEpoch)
        for i in 0..<10 { session.receive(frame: .ping(flags: .syn, opaque: UInt32(i)), now: testEpoch) }
        // 1 s later, 5 more are allowed.
        for i in 0..<5 { session.receive(frame: .ping(flags: .syn, opaque: UInt32(i)), now: testEpoch + .seconds(1)) }
        #expect(session.isActive)
        session.receive(frame: .ping(flags: .syn, opaque: 99), now: testEpoch + .seconds(1))
        #expect(!session.isActive)
    }

    @Test func pingAnswersAndDataAreNotCharged() {
        var session = YamuxSession(role: .server, configuration: Self.small, now: testEpoch)
        session.receive(frame: .windowUpdate(streamID: 1, flags: .syn), now: testEpoch)
        try? session.acceptStream(1)
        for _ in 0..<100 {
            session.receive(frame: .data(streamID: 1, flags: [], payload: ByteBuffer(bytes: [1, 2, 3])), now: testEpoch)
            session.consumed(streamID: 1, count: 3)
            session.receive(frame: .ping(flags: .ack, opaque: 7), now: testEpoch)
        }
        _ = session.drainActions()
        #expect(session.isActive)
    }

    @Test func resetsEmptyFramesAndLateFramesAreCharged() {
        var frames: [YamuxFrame] = []
        // Open and reset streams 1, 3, 5, ... (RST charged), then empty updates on a gone stream.
        for id in stride(from: UInt32(1), through: 9, by: 2) {
            frames.append(.windowUpdate(streamID: id, flags: .syn))
            frames.append(.windowUpdate(streamID: id, flags: .rst))
        }
        frames += (0..<6).map { _ in YamuxFrame.windowUpdate(streamID: 1, flags: []) }
        let (session, actions) = serverFed(frames)
        #expect(!session.isActive)
        #expect(endedWithFlood(actions))
    }

    @Test func streamsTheApplicationRefusesAreCharged() {
        var session = YamuxSession(role: .server, configuration: Self.small, now: testEpoch)
        var id: UInt32 = 5
        while session.isActive, id < 200 {
            session.receive(frame: .windowUpdate(streamID: id, flags: .syn), now: testEpoch)
            session.refuse(streamID: id, now: testEpoch)
            id += 2
        }
        let actions = session.drainActions()
        #expect(!session.isActive)
        #expect(endedWithFlood(actions))
        #expect(id <= 5 + 2 * 11)
    }

    @Test func theDefaultBudgetLetsATunnelResetAThousandStreams() {
        var session = YamuxSession(role: .server, configuration: YamuxConfiguration(keepAliveInterval: nil), now: testEpoch)
        for i in 0..<500 {
            let id = UInt32(2 * i + 1)
            session.receive(frame: .windowUpdate(streamID: id, flags: .syn), now: testEpoch)
            try? session.acceptStream(id)
            session.receive(frame: .windowUpdate(streamID: id, flags: .rst), now: testEpoch)
            _ = session.drainActions()
        }
        #expect(session.isActive)
    }
}
