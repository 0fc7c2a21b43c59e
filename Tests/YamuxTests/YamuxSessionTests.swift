import NIOCore
import Testing

@testable import Yamux

/// A single session driven with hand-made frames.
@Suite struct YamuxSessionTests {
    static let noKeepalive = YamuxConfiguration(keepAliveInterval: nil)

    func makeSession(_ role: YamuxRole, _ configuration: YamuxConfiguration = Self.noKeepalive) -> YamuxSession {
        YamuxSession(role: role, configuration: configuration, now: testEpoch)
    }

    func expectProtocolError(
        _ session: inout YamuxSession, _ code: YamuxError.Code, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let actions = session.drainActions()
        #expect(actions.frames.last == .goAway(.protocolError), sourceLocation: sourceLocation)
        guard case .sessionClosed(.error(let error)) = actions.last else {
            Issue.record("expected sessionClosed, got \(actions)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.code == code, sourceLocation: sourceLocation)
        #expect(!session.isActive, sourceLocation: sourceLocation)
    }

    @Test func streamIDsHaveTheRoleParity() throws {
        var client = self.makeSession(.client)
        #expect(try client.openStream() == 1)
        #expect(try client.openStream() == 3)
        var server = self.makeSession(.server)
        #expect(try server.openStream() == 2)
        #expect(try server.openStream() == 4)
        #expect(server.drainFrames() == [.windowUpdate(streamID: 2, flags: .syn), .windowUpdate(streamID: 4, flags: .syn)])
    }

    @Test func streamIDsRunOut() throws {
        var client = self.makeSession(.client)
        client.nextLocalStreamID = UInt64(UInt32.max) - 4
        #expect(try client.openStream() == UInt32.max - 4)
        #expect(try client.openStream() == UInt32.max - 2)
        do {
            _ = try client.openStream()
            Issue.record("expected streamsExhausted")
        } catch {
            #expect(error.code == .streamsExhausted)
        }
    }

    @Test func synWithOurParityIsAProtocolError() {
        var server = self.makeSession(.server)
        server.receive(frame: .windowUpdate(streamID: 2, flags: .syn), now: testEpoch)
        self.expectProtocolError(&server, .invalidStreamID)
    }

    @Test func synOnStreamZeroIsAProtocolError() {
        var server = self.makeSession(.server)
        server.receive(frame: .data(streamID: 0, flags: .syn, payload: ByteBuffer()), now: testEpoch)
        self.expectProtocolError(&server, .invalidStreamID)
    }

    @Test func duplicateSynIsAProtocolError() {
        var server = self.makeSession(.server)
        server.receive(frame: .windowUpdate(streamID: 1, flags: .syn), now: testEpoch)
        #expect(server.drainActions() == [.streamOpened(streamID: 1)])
        server.receive(frame: .windowUpdate(streamID: 1, flags: .syn), now: testEpoch)
        let actions = server.drainActions()
        #expect(actions.first == .writeFrame(.goAway(.protocolError)))
        #expect(actions.contains(.streamReset(streamID: 1, reason: .sessionClosed)))
        guard case .sessionClosed(.error(let error)) = actions.last else {
            Issue.record("expected sessionClosed")
            return
        }
        #expect(error.code == .duplicateStream)
    }

    @Test func synIDsMustIncrease() {
        var server = self.makeSession(.server)
        server.receive(frame: .windowUpdate(streamID: 5, flags: .syn), now: testEpoch)
        server.receive(frame: .windowUpdate(streamID: 5, flags: .rst), now: testEpoch)
        _ = server.drainActions()
        // Reusing 5 after it is gone, or going back to 3, breaks monotonicity.
        server.receive(frame: .windowUpdate(streamID: 3, flags: .syn), now: testEpoch)
        self.expectProtocolError(&server, .invalidStreamID)
    }

    @Test func dataOnANeverOpenedStreamIsAProtocolError() {
        var server = self.makeSession(.server)
        server.receive(frame: .data(streamID: 7, payload: ByteBuffer(string: "x")), now: testEpoch)
        self.expectProtocolError(&server, .unknownStream)

        var client = self.makeSession(.client)
        // Our parity, never opened by us.
        client.receive(frame: .windowUpdate(streamID: 9, delta: 5), now: testEpoch)
        self.expectProtocolError(&client, .unknownStream)
    }

    @Test func lateFramesForAGoneStreamAreDropped() throws {
        var client = self.makeSession(.client)
        let id = try client.openStream()
        client.reset(streamID: id)
        #expect(client.drainActions().events == [.streamReset(streamID: id, reason: .local)])
        client.receive(frame: .data(streamID: id, payload: ByteBuffer(string: "late")), now: testEpoch)
        client.receive(frame: .windowUpdate(streamID: id, flags: .ack, delta: 100), now: testEpoch)
        client.receive(frame: .windowUpdate(streamID: id, flags: .fin), now: testEpoch)
        #expect(client.drainActions().isEmpty)
        #expect(client.isActive)
    }

    @Test func dataBeyondTheReceiveWindowIsAProtocolError() {
        var server = self.makeSession(.server)
        server.receive(frame: .windowUpdate(streamID: 1, flags: .syn), now: testEpoch)
        server.receive(frame: .data(streamID: 1, payload: ByteBuffer(repeating: 1, count: 200_000)), now: testEpoch)
        #expect(server.drainActions().count == 2)
        // 62_144 bytes of window are left.
        server.receive(frame: .data(streamID: 1, payload: ByteBuffer(repeating: 1, count: 62_145)), now: testEpoch)
        self.expectProtocolError(&server, .receiveWindowExceeded)
    }

    @Test func oversizedDataHeaderEndsTheSessionBeforeThePayload() {
        var server = self.makeSession(.server)
        server.receive(bytes([0, 0, 0, 1, 0, 0, 0, 1, 0, 4, 0, 1]), now: testEpoch)
        self.expectProtocolError(&server, .frameTooLarge)
    }

    @Test func badVersionOnTheWireEndsTheSession() {
        var server = self.makeSession(.server)
        server.receive(bytes([1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]), now: testEpoch)
        self.expectProtocolError(&server, .invalidVersion)
        // Everything after the end is ignored.
        server.receive(bytes(YamuxHashicorpFixtureTests.pingSYN0), now: testEpoch)
        #expect(server.nextAction() == nil)
    }

    @Test func sendWindowOverflowIsAProtocolError() throws {
        var client = self.makeSession(.client)
        let id = try client.openStream()
        _ = client.drainActions()
        client.receive(frame: .windowUpdate(streamID: id, flags: .ack, delta: UInt32.max), now: testEpoch)
        self.expectProtocolError(&client, .sendWindowOverflow)
    }

    @Test func secondFinIsAProtocolError() {
        var server = self.makeSession(.server)
        server.receive(frame: .windowUpdate(streamID: 1, flags: [.syn, .fin]), now: testEpoch)
        #expect(server.drainActions() == [.streamOpened(streamID: 1), .streamHalfClosed(streamID: 1)])
        server.receive(frame: .windowUpdate(streamID: 1, flags: .fin), now: testEpoch)
        self.expectProtocolError(&server, .unexpectedFlag)
    }

    @Test func dataAfterFinResetsOnlyThatStream() throws {
        var server = self.makeSession(.server)
        server.receive(frame: .data(streamID: 1, flags: [.syn, .fin], payload: ByteBuffer(string: "last")), now: testEpoch)
        server.receive(frame: .windowUpdate(streamID: 3, flags: .syn), now: testEpoch)
        #expect(
            server.drainActions() == [
                .streamOpened(streamID: 1),
                .streamData(streamID: 1, ByteBuffer(string: "last")),
                .streamHalfClosed(streamID: 1),
                .streamOpened(streamID: 3),
            ])
        server.receive(frame: .data(streamID: 1, payload: ByteBuffer(string: "more")), now: testEpoch)
        let actions = server.drainActions()
        #expect(actions.frames == [.windowUpdate(streamID: 1, flags: .rst)])
        guard case .streamReset(1, .streamError(let error)) = actions.last else {
            Issue.record("expected a stream error reset, got \(actions)")
            return
        }
        #expect(error.code == .unexpectedFlag)
        #expect(server.isActive)
        #expect(server.openStreamCount == 1)
    }

    @Test func backlogOverflowRefusesWithRst() throws {
        var server = self.makeSession(.server, YamuxConfiguration(acceptBacklog: 2, keepAliveInterval: nil))
        for id: UInt32 in [1, 3, 5] {
            server.receive(frame: .data(streamID: id, flags: .syn, payload: ByteBuffer(string: "hi")), now: testEpoch)
        }
        let actions = server.drainActions()
        #expect(actions.events.filter { if case .streamOpened = $0 { true } else { false } }.count == 2)
        #expect(actions.frames == [.windowUpdate(streamID: 5, flags: .rst)])
        // Accepting one frees a backlog slot.
        try server.acceptStream(1)
        server.receive(frame: .windowUpdate(streamID: 7, flags: .syn), now: testEpoch)
        #expect(server.drainActions() == [.writeFrame(.windowUpdate(streamID: 1, flags: .ack)), .streamOpened(streamID: 7)])
        // Late data on the refused stream is dropped.
        server.receive(frame: .data(streamID: 5, payload: ByteBuffer(string: "x")), now: testEpoch)
        #expect(server.drainActions().isEmpty)
    }

    @Test func maximumStreamsLimitsBothDirections() throws {
        var server = self.makeSession(.server, YamuxConfiguration(maximumStreams: 2, keepAliveInterval: nil))
        server.receive(frame: .windowUpdate(streamID: 1, flags: .syn), now: testEpoch)
        _ = try server.openStream()
        do {
            _ = try server.openStream()
            Issue.record("expected tooManyStreams")
        } catch {
            #expect(error.code == .tooManyStreams)
        }
        _ = server.drainActions()
        server.receive(frame: .windowUpdate(streamID: 3, flags: .syn), now: testEpoch)
        #expect(server.drainActions() == [.writeFrame(.windowUpdate(streamID: 3, flags: .rst))])
    }

    @Test func writeIsLimitedByTheSendWindowAndSplitIntoFrames() throws {
        var client = self.makeSession(.client)
        let id = try client.openStream()
        _ = client.drainActions()
        #expect(client.sendWindow(streamID: id) == 262_144)
        let payload = ByteBuffer(repeating: 7, count: 300_000)
        #expect(try client.write(streamID: id, payload) == 262_144)
        let frames = client.drainFrames()
        #expect(frames.map(\.payload.readableBytes) == [65_536, 65_536, 65_536, 65_536])
        #expect(client.sendWindow(streamID: id) == 0)
        #expect(try client.write(streamID: id, payload) == 0)
        #expect(client.drainActions().isEmpty)
        client.receive(frame: .windowUpdate(streamID: id, flags: .ack, delta: 1000), now: testEpoch)
        #expect(client.drainActions() == [.windowOpened(streamID: id)])
        #expect(client.sendWindow(streamID: id) == 1000)
        // A further update does not report again until a write is cut short.
        client.receive(frame: .windowUpdate(streamID: id, delta: 1000), now: testEpoch)
        #expect(client.drainActions().isEmpty)
    }

    @Test func consumingHalfTheWindowSendsAnUpdate() throws {
        var server = self.makeSession(.server)
        server.receive(frame: .data(streamID: 1, flags: .syn, payload: ByteBuffer(repeating: 0, count: 200_000)), now: testEpoch)
        _ = server.drainActions()
        try server.acceptStream(1)
        #expect(server.drainFrames() == [.windowUpdate(streamID: 1, flags: .ack, delta: 0)])
        server.consumed(streamID: 1, count: 100_000)
        #expect(server.drainActions().isEmpty)
        server.consumed(streamID: 1, count: 31_072)
        #expect(server.drainFrames() == [.windowUpdate(streamID: 1, delta: 131_072)])
        server.consumed(streamID: 99, count: 5)
        #expect(server.drainActions().isEmpty)
    }

    @Test func consumptionBeforeAcceptIsCarriedByTheAck() throws {
        var server = self.makeSession(.server)
        server.receive(frame: .data(streamID: 1, flags: .syn, payload: ByteBuffer(repeating: 0, count: 200_000)), now: testEpoch)
        _ = server.drainActions()
        server.consumed(streamID: 1, count: 200_000)
        #expect(server.drainActions().isEmpty)
        try server.acceptStream(1)
        #expect(server.drainFrames() == [.windowUpdate(streamID: 1, flags: .ack, delta: 200_000)])
    }

    @Test func writingToAnUnacceptedStreamAcceptsIt() throws {
        var server = self.makeSession(.server)
        server.receive(frame: .windowUpdate(streamID: 1, flags: .syn), now: testEpoch)
        _ = server.drainActions()
        #expect(try server.write(streamID: 1, ByteBuffer(string: "hi")) == 2)
        #expect(
            server.drainFrames() == [
                .windowUpdate(streamID: 1, flags: .ack), .data(streamID: 1, payload: ByteBuffer(string: "hi")),
            ])
        #expect(server.pendingAccept.isEmpty)
    }

    @Test func halfCloseBothWaysClosesTheStream() throws {
        var client = self.makeSession(.client)
        let id = try client.openStream()
        try client.closeWrite(streamID: id)
        try client.closeWrite(streamID: id)
        #expect(client.drainFrames() == [.windowUpdate(streamID: id, flags: .syn), .windowUpdate(streamID: id, flags: .fin)])
        do {
            _ = try client.write(streamID: id, ByteBuffer(string: "x"))
            Issue.record("expected streamNotWritable")
        } catch {
            #expect(error.code == .streamNotWritable)
        }
        client.receive(frame: .data(streamID: id, flags: [.ack, .fin], payload: ByteBuffer(string: "bye")), now: testEpoch)
        #expect(
            client.drainActions() == [
                .streamData(streamID: id, ByteBuffer(string: "bye")),
                .streamHalfClosed(streamID: id),
                .streamClosed(streamID: id),
            ])
        #expect(client.openStreamCount == 0)
        #expect(throws: YamuxError.self) { try client.closeWrite(streamID: id) }
    }

    @Test func remoteResetForgetsTheStream() throws {
        var client = self.makeSession(.client)
        let id = try client.openStream()
        _ = client.drainActions()
        client.receive(frame: .data(streamID: id, flags: .rst, payload: ByteBuffer(string: "ignored")), now: testEpoch)
        #expect(client.drainActions() == [.streamReset(streamID: id, reason: .remote)])
        #expect(client.sendWindow(streamID: id) == nil)
    }

    @Test func pingRequestIsAnsweredWithTheSameOpaque() {
        var server = self.makeSession(.server)
        server.receive(frame: .ping(flags: .syn, opaque: 0xCAFE_F00D), now: testEpoch)
        #expect(server.drainActions() == [.writeFrame(.ping(flags: .ack, opaque: 0xCAFE_F00D))])
        // Unsolicited answers are ignored.
        server.receive(frame: .ping(flags: .ack, opaque: 12), now: testEpoch)
        #expect(server.drainActions().isEmpty)
    }

    @Test func pingMeasuresRTT() throws {
        var client = self.makeSession(.client)
        let opaque = try client.ping(now: testEpoch)
        #expect(client.drainFrames() == [.ping(flags: .syn, opaque: opaque)])
        client.receive(frame: .ping(flags: .ack, opaque: opaque), now: testEpoch + .milliseconds(25))
        #expect(client.drainActions() == [.pingRTT(opaque: opaque, rtt: .milliseconds(25))])
    }

    @Test func applicationPingTimesOut() throws {
        var client = self.makeSession(.client)
        let opaque = try client.ping(now: testEpoch)
        _ = client.drainActions()
        #expect(client.nextDeadline == testEpoch + .seconds(10))
        client.tick(now: testEpoch + .seconds(10))
        #expect(client.drainActions() == [.pingTimedOut(opaque: opaque)])
        #expect(client.isActive)
    }

    @Test func keepaliveSendsPingsAndTimesOut() {
        var client = self.makeSession(.client, YamuxConfiguration())
        #expect(client.nextDeadline == testEpoch + .seconds(30))
        client.tick(now: testEpoch + .seconds(10))
        #expect(client.drainActions().isEmpty)
        client.tick(now: testEpoch + .seconds(30))
        #expect(client.drainActions() == [.writeFrame(.ping(flags: .syn, opaque: 0))])
        client.receive(frame: .ping(flags: .ack, opaque: 0), now: testEpoch + .seconds(31))
        #expect(client.drainActions() == [.pingRTT(opaque: 0, rtt: .seconds(1))])
        #expect(client.nextDeadline == testEpoch + .seconds(61))
        client.tick(now: testEpoch + .seconds(61))
        #expect(client.drainActions() == [.writeFrame(.ping(flags: .syn, opaque: 1))])
        client.tick(now: testEpoch + .seconds(71))
        let actions = client.drainActions()
        #expect(actions.frames == [.goAway(.internalError)])
        guard case .sessionClosed(.error(let error)) = actions.last else {
            Issue.record("expected sessionClosed")
            return
        }
        #expect(error.code == .keepaliveTimeout)
        #expect(client.nextDeadline == nil)
    }

    @Test func localGoAwayNormalRefusesNewStreamsButKeepsOpenOnes() throws {
        var server = self.makeSession(.server)
        server.receive(frame: .windowUpdate(streamID: 1, flags: .syn), now: testEpoch)
        _ = server.drainActions()
        server.goAway(.normal)
        server.goAway(.normal)
        #expect(server.drainFrames() == [.goAway(.normal)])
        server.receive(frame: .windowUpdate(streamID: 3, flags: .syn), now: testEpoch)
        server.receive(frame: .data(streamID: 1, payload: ByteBuffer(string: "still")), now: testEpoch)
        #expect(
            server.drainActions() == [
                .writeFrame(.windowUpdate(streamID: 3, flags: .rst)),
                .streamData(streamID: 1, ByteBuffer(string: "still")),
            ])
        #expect(server.isActive)
    }

    @Test func localGoAwayWithErrorEndsTheSession() throws {
        var server = self.makeSession(.server)
        server.receive(frame: .windowUpdate(streamID: 1, flags: .syn), now: testEpoch)
        _ = server.drainActions()
        server.goAway(.internalError)
        #expect(
            server.drainActions() == [
                .writeFrame(.goAway(.internalError)),
                .streamReset(streamID: 1, reason: .sessionClosed),
                .sessionClosed(.local(.internalError)),
            ])
        #expect(throws: YamuxError.self) { try server.openStream() }
        #expect(throws: YamuxError.self) { try server.write(streamID: 1, ByteBuffer()) }
        #expect(throws: YamuxError.self) { try server.ping(now: testEpoch) }
    }

    @Test func remoteGoAwayNormalStopsOpening() throws {
        var client = self.makeSession(.client)
        let id = try client.openStream()
        _ = client.drainActions()
        client.receive(frame: .goAway(.normal), now: testEpoch)
        client.receive(frame: .goAway(.normal), now: testEpoch)
        #expect(client.drainActions() == [.goAwayReceived(.normal)])
        #expect(client.hasReceivedGoAway)
        do {
            _ = try client.openStream()
            Issue.record("expected remoteGoAway")
        } catch {
            #expect(error.code == .remoteGoAway)
        }
        #expect(try client.write(streamID: id, ByteBuffer(string: "ok")) == 2)
    }

    @Test func unknownRemoteGoAwayCodeEndsTheSession() {
        var client = self.makeSession(.client)
        client.receive(frame: .goAway(YamuxGoAwayCode(networkCode: 9)), now: testEpoch)
        #expect(client.drainActions() == [.sessionClosed(.remote(YamuxGoAwayCode(networkCode: 9)))])
    }

    @Test func closeAndTransportClosedResetEveryStream() throws {
        var client = self.makeSession(.client)
        _ = try client.openStream()
        _ = try client.openStream()
        _ = client.drainActions()
        var copy = client
        client.close()
        #expect(
            client.drainActions() == [
                .writeFrame(.goAway(.normal)),
                .streamReset(streamID: 1, reason: .sessionClosed),
                .streamReset(streamID: 3, reason: .sessionClosed),
                .sessionClosed(.local(.normal)),
            ])
        copy.transportClosed()
        #expect(
            copy.drainActions() == [
                .streamReset(streamID: 1, reason: .sessionClosed),
                .streamReset(streamID: 3, reason: .sessionClosed),
                .sessionClosed(.transportClosed),
            ])
    }

    @Test func rejectingAnInboundStreamWithReset() {
        var server = self.makeSession(.server)
        server.receive(frame: .windowUpdate(streamID: 1, flags: .syn), now: testEpoch)
        _ = server.drainActions()
        server.reset(streamID: 1)
        server.reset(streamID: 1)
        #expect(
            server.drainActions() == [
                .writeFrame(.windowUpdate(streamID: 1, flags: .rst)),
                .streamReset(streamID: 1, reason: .local),
            ])
        #expect(server.pendingAccept.isEmpty)
    }

    @Test func largerReceiveWindowIsAnnouncedAndEnforced() throws {
        let configuration = YamuxConfiguration(receiveWindow: 1 << 20, keepAliveInterval: nil)
        var server = self.makeSession(.server, configuration)
        server.receive(frame: .windowUpdate(streamID: 1, flags: .syn), now: testEpoch)
        try server.acceptStream(1)
        #expect(server.drainFrames() == [.windowUpdate(streamID: 1, flags: .ack, delta: 786_432)])
        server.receive(frame: .data(streamID: 1, payload: ByteBuffer(repeating: 0, count: 1 << 20)), now: testEpoch)
        #expect(server.drainActions().count == 1)
        server.receive(frame: .data(streamID: 1, payload: ByteBuffer(repeating: 0, count: 1)), now: testEpoch)
        self.expectProtocolError(&server, .receiveWindowExceeded)
    }
}
