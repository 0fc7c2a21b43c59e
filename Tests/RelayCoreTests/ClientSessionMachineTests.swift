import Testing
@testable import RelayCore

/// The client's session rules (DESIGN §8, §4 GOAWAY) on a fake clock and a fixed jitter.
@Suite struct ClientSessionMachineTests {
    static let allocated = ControlFrame.allocated(.init(
        allocationID: Fixture.allocation, expiresAt: Fixture.now + 3600, bandwidthBitsPerSecond: 0, quotaBytes: 0,
        relayPort: 4433, relayAddress: "relay", observedAddress: "1.2.3.4:5"))

    func machine(transports: [ClientSessionMachine.Transport] = [.quic, .tcp], maxAttempts: Int = 10,
                 jitter: Double = 1.0) -> ClientSessionMachine {
        var configuration = ClientSessionMachine.Configuration(relay: "relay1:4433", transports: transports)
        configuration.maxAttempts = maxAttempts
        return ClientSessionMachine(configuration: configuration, random: { jitter })
    }

    func states(_ actions: [ClientSessionMachine.Action]) -> [ClientSessionMachine.State] {
        actions.compactMap { if case .stateChanged(let s, _) = $0 { s } else { nil } }
    }

    /// Connected, allocated and paired at `now`.
    func paired(_ m: inout ClientSessionMachine, at now: Duration = .zero) {
        _ = m.start(now: now)
        _ = m.connected(now: now)
        _ = m.received(Self.allocated, now: now)
        _ = m.received(.peer(.paired), now: now)
    }

    @Test func connectsAllocatesAndFollowsPeerStates() {
        var m = machine()
        #expect(m.start(now: .zero) == [.stateChanged(.connecting(.quic), reason: "start"), .connect(.quic, address: "relay1:4433")])
        #expect(m.connected(now: .milliseconds(50)) == [.allocate, .stateChanged(.allocating, reason: "connected")])
        #expect(m.received(Self.allocated, now: .milliseconds(60)).isEmpty)
        #expect(states(m.received(.peer(.waiting), now: .milliseconds(60))) == [.waiting])
        #expect(states(m.received(.peer(.paired), now: .seconds(1))) == [.paired])
        #expect(states(m.received(.peer(.peerGone), now: .seconds(2))) == [.peerGone])
        #expect(m.send([1]) == [.sendDatagram([1])])
        #expect(states(m.close(now: .seconds(3))) == [.closed])
        #expect(m.send([2]).isEmpty)
    }

    @Test func datagramsWaitInABoundedQueueAndLeaveOnTheNextAllocation() {
        var m = machine()
        _ = m.start(now: .zero)
        for i in 0..<105 { #expect(m.send([UInt8(i)]).isEmpty) }
        #expect(m.queuedCount == 100 && m.droppedWhileAway == 5)
        _ = m.connected(now: .zero)
        _ = m.received(Self.allocated, now: .zero)
        let actions = m.received(.peer(.waiting), now: .zero)
        let sent = actions.compactMap { if case .sendDatagram(let d) = $0 { d } else { nil } }
        #expect(sent == (5..<105).map { [UInt8($0)] })
        #expect(m.queuedCount == 0)
    }

    @Test func fallsBackToTheNextTransportAndProbesQUICAgain() {
        var m = machine()
        _ = m.start(now: .zero)
        let fallback = m.connectFailed("UDP gets no answer", now: .seconds(4))
        #expect(fallback.contains(.connect(.tcp, address: "relay1:4433")))
        _ = m.connected(now: .seconds(4))
        _ = m.received(Self.allocated, now: .seconds(4))
        _ = m.received(.peer(.paired), now: .seconds(4))
        m.heard(now: .seconds(63))
        #expect(m.tick(now: .seconds(63)).isEmpty)
        #expect(m.tick(now: .seconds(64)) == [.probe(.quic, address: "relay1:4433")])
        let back = m.probeSucceeded(now: .seconds(65))
        #expect(back.contains(.connect(.quic, address: "relay1:4433")) && states(back) == [.connecting(.quic)])
    }

    @Test func failedAttemptsBackOffExponentiallyAndStopAtMaxAttempts() {
        var m = machine(transports: [.quic], maxAttempts: 4)
        var now = Duration.zero
        _ = m.start(now: now)
        var delays: [Duration] = []
        for _ in 0..<3 {
            let actions = m.connectFailed("refused", now: now)
            guard case .reconnecting(_, let delay)? = states(actions).first else {
                Issue.record("expected reconnecting, got \(actions)")
                return
            }
            delays.append(delay)
            #expect(m.tick(now: now + delay - .milliseconds(1)).isEmpty)
            now += delay
            #expect(m.tick(now: now).contains(.connect(.quic, address: "relay1:4433")))
        }
        #expect(delays == [.milliseconds(250), .milliseconds(500), .seconds(1)])
        let last = m.connectFailed("refused", now: now)
        #expect(states(last) == [.failed("4 attempts failed; last: refused")])
        #expect(m.tick(now: now + .seconds(60)).isEmpty)
    }

    @Test func theBackoffIsCappedAndJittered() {
        let backoff = ClientSessionMachine.Configuration(relay: "r:1").backoff
        #expect(backoff.delay(attempt: 20, unit: 1) == .seconds(30))
        #expect(backoff.delay(attempt: 2, unit: 0.5) == .milliseconds(500))
        var m = machine(transports: [.quic], maxAttempts: 0, jitter: 0)
        _ = m.start(now: .zero)
        #expect(states(m.connectFailed("x", now: .zero)) == [.reconnecting(attempt: 1, in: .zero)])
    }

    @Test func refusalsThatCannotHealStopAtOnceOthersRetry() {
        var m = machine()
        paired(&m)
        let revoked = m.received(.error(code: .revoked, reason: "revoked"), now: .seconds(1))
        #expect(revoked.first == .closeConnection && states(revoked) == [.failed("revoked: revoked")])
        var n = machine()
        _ = n.start(now: .zero)
        _ = n.connected(now: .zero)
        let capacity = n.received(.error(code: .capacity, reason: "full"), now: .seconds(1))
        #expect(states(capacity) == [.reconnecting(attempt: 1, in: .milliseconds(250))])
        var o = machine()
        _ = o.start(now: .zero)
        _ = o.connected(now: .zero)
        #expect(states(o.received(.error(code: .unavailable, reason: "redis"), now: .zero)).first.map { if case .reconnecting = $0 { true } else { false } } == true)
    }

    @Test func goAwayRedirectGoesToTheAlternateAtOnceThenBack() {
        var m = machine()
        _ = m.start(now: .zero)
        _ = m.connected(now: .zero)
        let redirect = m.received(.goAway(.init(reason: .redirect, tryForMilliseconds: 5000, alternate: "relay2:4433")), now: .seconds(1))
        #expect(redirect.first == .closeConnection && states(redirect) == [.reconnecting(attempt: 1, in: .zero)])
        #expect(m.lost("closed with code 0", now: .seconds(1)).isEmpty)  // the close that follows is expected
        #expect(m.tick(now: .seconds(1)).contains(.connect(.quic, address: "relay2:4433")))
        // The alternate never answers: after try_for_ms the relay's own address is used again.
        _ = m.connectFailed("timeout", now: .seconds(2))
        _ = m.connectFailed("timeout", now: .seconds(3))
        _ = m.tick(now: .seconds(7))
        #expect(m.currentTarget == "relay1:4433")
    }

    @Test func goAwayReplacedClosesWithoutReconnecting() {
        var m = machine()
        paired(&m)
        let actions = m.received(.goAway(.init(reason: .replaced)), now: .seconds(1))
        #expect(actions.first == .closeConnection && states(actions) == [.closed])
        #expect(m.tick(now: .seconds(100)).isEmpty)
    }

    @Test func goAwayShutdownKeepsForwardingUntilTheMoveIsDue() {
        var m = machine()
        paired(&m)
        #expect(m.received(.goAway(.init(reason: .shutdown, reconnectInMilliseconds: 1500, tryForMilliseconds: 30_000,
                                         alternate: "relay2:4433")), now: .seconds(1)).isEmpty)
        #expect(m.state == .paired && m.send([9]) == [.sendDatagram([9])])
        m.heard(now: .seconds(2))
        #expect(m.tick(now: .seconds(2)).isEmpty)
        let move = m.tick(now: .milliseconds(2500))
        #expect(move.contains(.connect(.quic, address: "relay2:4433")))
    }

    @Test func aSilentPathIsNoticedWithinTwoKeepaliveIntervals() {
        var m = machine()
        paired(&m)
        m.heard(now: .seconds(30))
        #expect(m.tick(now: .seconds(89)).isEmpty)
        let lost = m.tick(now: .seconds(90))
        #expect(lost.first == .closeConnection)
        #expect(states(lost) == [.reconnecting(attempt: 1, in: .zero)])
        #expect(m.tick(now: .seconds(90)).contains(.connect(.quic, address: "relay1:4433")))
    }

    @Test func theAttemptCountStartsAgainAfterThirtySecondsConnected() {
        var m = machine(transports: [.quic], maxAttempts: 3)
        _ = m.start(now: .zero)
        _ = m.connectFailed("a", now: .zero)
        _ = m.tick(now: .seconds(1))
        _ = m.connectFailed("b", now: .seconds(1))
        #expect(m.failedAttempts == 2)
        _ = m.tick(now: .seconds(2))
        _ = m.connected(now: .seconds(2))
        _ = m.received(Self.allocated, now: .seconds(2))
        _ = m.received(.peer(.paired), now: .seconds(2))
        m.heard(now: .seconds(32))
        _ = m.tick(now: .seconds(32))
        #expect(m.failedAttempts == 0)
        // The loss of a working path reconnects at once and is not counted as a failure.
        let lost = m.lost("network", now: .seconds(40))
        #expect(states(lost) == [.reconnecting(attempt: 1, in: .zero)] && m.failedAttempts == 0)
    }
}
