import Testing

@testable import Yamux

@Suite struct YamuxSendWindowManagerTests {
    @Test func reserveIsBoundedByTheWindow() {
        var manager = YamuxSendWindowManager()
        #expect(manager.reserve(100_000) == 100_000)
        #expect(!manager.isBlocked)
        #expect(manager.reserve(200_000) == 162_144)
        #expect(manager.isBlocked)
        #expect(manager.window == 0)
        #expect(manager.reserve(1) == 0)
        #expect(manager.reserve(0) == 0)
    }

    @Test func incrementReopensABlockedWriterOnce() throws {
        var manager = YamuxSendWindowManager()
        _ = manager.reserve(300_000)
        #expect(try manager.receiveIncrement(0, streamID: 1) == false)
        #expect(try manager.receiveIncrement(10, streamID: 1) == true)
        #expect(!manager.isBlocked)
        #expect(try manager.receiveIncrement(10, streamID: 1) == false)
        #expect(manager.window == 20)
    }

    @Test func overflowingIncrementThrows() throws {
        var manager = YamuxSendWindowManager()
        do {
            _ = try manager.receiveIncrement(UInt32.max, streamID: 1)
            Issue.record("expected sendWindowOverflow")
        } catch {
            #expect(error.code == .sendWindowOverflow)
        }
        #expect(manager.window == 262_144)
        #expect(try manager.receiveIncrement(UInt32.max - 262_144, streamID: 1) == false)
        #expect(manager.window == UInt32.max)
    }
}
