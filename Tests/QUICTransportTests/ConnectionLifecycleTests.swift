@testable import QUICTransport
import Testing

/// The QUIC connection lifecycle without sockets or ngtcp2: every transition and timer.
@Suite struct ConnectionLifecycleTests {
    typealias Lifecycle = ConnectionLifecycle
    let close = Lifecycle.RequestedClose(code: 7, isApplication: true, reason: Array("bye".utf8))
    let ms: UInt64 = 1_000_000

    func established() -> Lifecycle {
        var lifecycle = Lifecycle(ackThreshold: 4)
        let r11 = lifecycle.handshakeCompleted()
        #expect(r11)
        return lifecycle
    }

    @Test func handshakeOpensOnceAndPacketsAreRead() {
        var lifecycle = Lifecycle(ackThreshold: 4)
        #expect(!lifecycle.isOpen)
        let r19 = lifecycle.packetArrived()
        #expect(r19 == .read)
        let r21 = lifecycle.handshakeCompleted()
        #expect(r21)
        let r23 = lifecycle.handshakeCompleted()
        #expect(!r23)
        #expect(lifecycle.isOpen && lifecycle.phase == .established)
    }

    @Test func datagramOnlyPacketsHoldTheirAckUntilThresholdOrDeadline() {
        var lifecycle = established()
        let r30 = lifecycle.packetRead(.datagrams, now: 100 * ms)
        #expect(r30 == .holdAck)
        let r32 = lifecycle.packetRead(.datagrams, now: 101 * ms)
        #expect(r32 == .holdAck)
        // ngtcp2 wants its ACK timer at 101 ms: held until 20 ms after the first held packet.
        #expect(lifecycle.nextDeadline(ngtcp2Expiry: 101 * ms, nothingToSend: true) == 120 * ms)
        // Something waits to be sent: ngtcp2's deadline stands.
        #expect(lifecycle.nextDeadline(ngtcp2Expiry: 101 * ms, nothingToSend: false) == 101 * ms)
        let r38 = lifecycle.packetRead(.datagrams, now: 102 * ms)
        #expect(r38 == .holdAck)
        let r40 = lifecycle.packetRead(.datagrams, now: 103 * ms)
        #expect(r40 == .flush)  // 4th: threshold
        let step = lifecycle.beginFlush(controlPending: false)
        #expect(step == .write)
        #expect(lifecycle.ackPendingSince == nil && lifecycle.heldAckPackets == 0)
        // A packet that wants an answer flushes at once.
        let r46 = lifecycle.packetRead(.other, now: 110 * ms)
        #expect(r46 == .flush)
    }

    @Test func aQuietPacketNeedsNoWriteAndKeepsHeldAcksHeld() {
        var handshaking = Lifecycle(ackThreshold: 4)
        let q1 = handshaking.packetRead(.quiet, now: 0)
        #expect(q1 == .flush)  // the handshake always writes
        var lifecycle = established()
        let q2 = lifecycle.packetRead(.datagrams, now: 100 * ms)
        #expect(q2 == .holdAck)
        // The peer's ACK arrives: no write pass, and the held ACK keeps its deadline and count.
        let q3 = lifecycle.packetRead(.quiet, now: 101 * ms)
        #expect(q3 == .waitForTimer)
        #expect(lifecycle.ackPendingSince == 100 * ms && lifecycle.heldAckPackets == 1)
        #expect(lifecycle.nextDeadline(ngtcp2Expiry: 101 * ms, nothingToSend: true) == 120 * ms)
        // A PING's ACK is ngtcp2's to time: with no held datagrams its expiry stands.
        var idle = established()
        let q4 = idle.packetRead(.quiet, now: 200 * ms)
        #expect(q4 == .waitForTimer)
        #expect(idle.nextDeadline(ngtcp2Expiry: 200 * ms + 10_000, nothingToSend: true) == 200 * ms + 10_000)
        // Closing: every packet flushes (the close must go out).
        let q5 = idle.requestClose(close)
        #expect(q5)
        let q6 = idle.packetRead(.quiet, now: 201 * ms)
        #expect(q6 == .flush)
    }

    @Test func ackPoliciesMatchTheRelayAndAnOrdinaryPeer() {
        #expect(QUICConfiguration.AckPolicy.coalescing.threshold == 8)
        #expect(QUICConfiguration.AckPolicy.coalescing.holdNanoseconds == 20 * ms)
        #expect(QUICConfiguration.AckPolicy.standard.threshold == 2)
        #expect(QUICConfiguration.AckPolicy.standard.holdNanoseconds == 24 * ms)
    }

    @Test func requestedCloseWaitsForControlDataAtMostTheLinger() {
        var lifecycle = established()
        let r52 = lifecycle.requestClose(close)
        #expect(r52)
        let r54 = lifecycle.requestClose(close)
        #expect(!r54)  // once
        #expect(!lifecycle.isOpen)
        let r57 = lifecycle.packetRead(.datagrams, now: 0)
        #expect(r57 == .flush)  // no ACK holding while closing
        let r59 = lifecycle.beginFlush(controlPending: true)
        #expect(r59 == .writeControlFirst)
        let r61 = lifecycle.afterControlWrite(controlStillPending: true, now: 1000 * ms)
        #expect(r61 == .skip)
        #expect(lifecycle.lingerDeadline == 1250 * ms)
        #expect(lifecycle.nextDeadline(ngtcp2Expiry: .max, nothingToSend: false) == 1250 * ms)
        #expect(lifecycle.timerFired(now: 1250 * ms, ngtcp2Expiry: .max) == .init(flushForLinger: true))
        let r66 = lifecycle.beginFlush(controlPending: true)
        #expect(r66 == .writeControlFirst)
        let r68 = lifecycle.afterControlWrite(controlStillPending: true, now: 1250 * ms)
        #expect(r68 == .close(close))
        #expect(lifecycle.requestedClose == nil)
    }

    @Test func requestedCloseGoesAtOnceWhenNothingWaitsOrBeforeTheHandshake() {
        var lifecycle = established()
        let r75 = lifecycle.requestClose(close)
        #expect(r75)
        let r77 = lifecycle.beginFlush(controlPending: false)
        #expect(r77 == .close(close))
        var handshaking = Lifecycle(ackThreshold: 4)
        let r80 = handshaking.requestClose(close)
        #expect(r80)
        let r82 = handshaking.beginFlush(controlPending: true)
        #expect(r82 == .close(close))  // no control stream yet
    }

    @Test func closingAnswersLatePacketsWithBackoffThenEnds() {
        var lifecycle = established()
        lifecycle.closeSent(now: 0, pto: 10 * ms)
        #expect(lifecycle.phase == .closing(until: 30 * ms))
        let r90 = lifecycle.requestClose(close)
        #expect(!r90)
        let r92 = lifecycle.beginFlush(controlPending: true)
        #expect(r92 == .skip)
        var answers: [Lifecycle.Arrival] = []
        for _ in 1...20 { answers.append(lifecycle.packetArrived()) }
        // Answered at packets 1, 3, 7, 15: the gap doubles.
        #expect(answers.enumerated().filter { $0.element == .resendClose }.map { $0.offset + 1 } == [1, 3, 7, 15])
        #expect(lifecycle.nextDeadline(ngtcp2Expiry: 1, nothingToSend: true) == 30 * ms)
        #expect(lifecycle.timerFired(now: 29 * ms, ngtcp2Expiry: 0) == .init())
        #expect(lifecycle.timerFired(now: 30 * ms, ngtcp2Expiry: 0) == .init(destroy: true))
    }

    @Test func drainingIsSilentThenEnds() {
        var lifecycle = established()
        lifecycle.peerClosed(now: 5 * ms, pto: 1 * ms)
        #expect(lifecycle.phase == .draining(until: 8 * ms))
        let r106 = lifecycle.packetArrived()
        #expect(r106 == .ignore)
        let r108 = lifecycle.beginFlush(controlPending: false)
        #expect(r108 == .skip)
        #expect(lifecycle.timerFired(now: 8 * ms, ngtcp2Expiry: 0) == .init(destroy: true))
    }

    @Test func ngtcp2ExpiryDrivesTimersAndReleasedIsInert() {
        var lifecycle = established()
        #expect(lifecycle.timerFired(now: 10, ngtcp2Expiry: 11) == .init())
        #expect(lifecycle.timerFired(now: 11, ngtcp2Expiry: 11) == .init(handleExpiry: true))
        #expect(lifecycle.nextDeadline(ngtcp2Expiry: 42, nothingToSend: true) == 42)
        lifecycle.released()
        #expect(lifecycle.phase == .closed)
        let r120 = lifecycle.packetArrived()
        #expect(r120 == .ignore)
        #expect(lifecycle.nextDeadline(ngtcp2Expiry: 42, nothingToSend: true) == .max)
        #expect(lifecycle.timerFired(now: 100, ngtcp2Expiry: 0) == .init())
        let r124 = lifecycle.requestClose(close)
        #expect(!r124)
    }
}
