import Testing

@testable import Yamux

@Suite struct YamuxReceiveWindowManagerTests {
    @Test func startsAtTheInitialWindow() {
        var manager = YamuxReceiveWindowManager(targetWindow: 256 * 1024)
        #expect(manager.window == 262_144)
        #expect(manager.nextIncrement(force: true) == 0)
        #expect(manager.nextIncrement(force: false) == nil)
    }

    @Test func largerTargetIsAnnouncedByTheFirstIncrement() {
        var manager = YamuxReceiveWindowManager(targetWindow: 1 << 20)
        #expect(manager.window == 262_144)
        let increment = manager.nextIncrement(force: true)
        #expect(increment == 786_432)
        #expect(manager.window == 1 << 20)
    }

    @Test func targetBelowInitialIsRaised() {
        let manager = YamuxReceiveWindowManager(targetWindow: 10)
        #expect(manager.targetWindow == 262_144)
    }

    @Test func incrementOnlyAfterHalfTheWindowIsConsumed() throws {
        var manager = YamuxReceiveWindowManager(targetWindow: 262_144)
        try manager.receiveData(length: 200_000, streamID: 1)
        #expect(manager.window == 62_144)
        #expect(manager.unconsumed == 200_000)
        manager.consumed(131_071)
        #expect(manager.nextIncrement(force: false) == nil)
        manager.consumed(1)
        #expect(manager.nextIncrement(force: false) == 131_072)
        #expect(manager.window == 193_216)
        #expect(manager.window + manager.unconsumed == 262_144)
    }

    @Test func exceedingTheWindowThrows() throws {
        var manager = YamuxReceiveWindowManager(targetWindow: 262_144)
        try manager.receiveData(length: 262_144, streamID: 1)
        #expect(manager.window == 0)
        do {
            try manager.receiveData(length: 1, streamID: 1)
            Issue.record("expected receiveWindowExceeded")
        } catch {
            #expect(error.code == .receiveWindowExceeded)
        }
        // The failed frame changed nothing.
        #expect(manager.unconsumed == 262_144)
    }

    @Test func zeroAndNegativeConsumptionIsIgnored() throws {
        var manager = YamuxReceiveWindowManager(targetWindow: 262_144)
        try manager.receiveData(length: 10, streamID: 1)
        manager.consumed(0)
        manager.consumed(-5)
        #expect(manager.unconsumed == 10)
    }
}
