import Testing

@testable import Yamux

@Suite struct YamuxKeepaliveStateMachineTests {
    @Test func keepaliveIsSentEveryIntervalAfterTheAnswer() {
        var machine = YamuxKeepaliveStateMachine(
            interval: .seconds(30), timeout: .seconds(10), maximumOutstanding: 4, now: testEpoch)
        #expect(machine.nextDeadline == testEpoch + .seconds(30))
        #expect(machine.tick(now: testEpoch + .seconds(29)) == .init())
        let first = machine.tick(now: testEpoch + .seconds(30))
        #expect(first.pingToSend == 0)
        #expect(machine.nextDeadline == testEpoch + .seconds(40))
        #expect(machine.receiveACK(opaque: 0, now: testEpoch + .seconds(31)) == .seconds(1))
        #expect(machine.nextDeadline == testEpoch + .seconds(61))
        #expect(machine.tick(now: testEpoch + .seconds(61)).pingToSend == 1)
    }

    @Test func unansweredKeepaliveFails() {
        var machine = YamuxKeepaliveStateMachine(
            interval: .seconds(30), timeout: .seconds(10), maximumOutstanding: 4, now: testEpoch)
        _ = machine.tick(now: testEpoch + .seconds(30))
        #expect(!machine.tick(now: testEpoch + .seconds(39)).keepaliveFailed)
        #expect(machine.tick(now: testEpoch + .seconds(40)).keepaliveFailed)
    }

    @Test func applicationPingsTimeOutWithoutFailingTheSession() throws {
        var machine = YamuxKeepaliveStateMachine(interval: nil, timeout: .seconds(10), maximumOutstanding: 2, now: testEpoch)
        #expect(machine.nextDeadline == nil)
        let a = try machine.sendPing(now: testEpoch)
        let b = try machine.sendPing(now: testEpoch + .seconds(5))
        #expect(a != b)
        #expect(throws: YamuxError.self) { try machine.sendPing(now: testEpoch) }
        #expect(machine.nextDeadline == testEpoch + .seconds(10))
        let result = machine.tick(now: testEpoch + .seconds(12))
        #expect(result.timedOutPings == [a])
        #expect(!result.keepaliveFailed)
        #expect(machine.receiveACK(opaque: a, now: testEpoch + .seconds(13)) == nil)
        #expect(machine.receiveACK(opaque: b, now: testEpoch + .seconds(13)) == .seconds(8))
        #expect(machine.receiveACK(opaque: 999, now: testEpoch) == nil)
    }
}
