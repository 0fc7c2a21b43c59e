import NIOCore
import Testing

@testable import Yamux

/// Two sessions talking to each other in memory through their encoded frames.
@Suite struct YamuxEndToEndTests {
    @Test func openAcceptAndExchange() throws {
        let pair = BackToBack()
        let id = try pair.client.open()
        pair.client.send(ByteBuffer(string: "ping?"), on: id)
        pair.interact()
        #expect(pair.server.opened == [id])
        #expect(pair.server.received[id] == ByteBuffer(string: "ping?"))
        pair.server.send(ByteBuffer(string: "pong!"), on: id)
        pair.interact()
        #expect(pair.client.received[id] == ByteBuffer(string: "pong!"))
        #expect(pair.client.session.streams[id]?.stateMachine.state == .established)
        #expect(pair.server.session.streams[id]?.stateMachine.state == .established)
    }

    @Test func serverOpenedStreams() throws {
        let pair = BackToBack()
        let id = try pair.server.open()
        #expect(id == 2)
        pair.server.send(ByteBuffer(string: "pushed"), on: id, thenClose: true)
        pair.interact()
        #expect(pair.client.opened == [2])
        #expect(pair.client.received[2] == ByteBuffer(string: "pushed"))
        #expect(pair.client.halfClosed == [2])
    }

    /// Several MiB each way at once on one stream, with window updates; checks every byte.
    @Test func bidirectionalBulkTransfer() throws {
        let pair = BackToBack()
        var random = TestRandom(seed: 7)
        let up = random.bytes(5 * 1024 * 1024 + 123)
        let down = random.bytes(3 * 1024 * 1024 + 7)
        let id = try pair.client.open()
        pair.client.send(up, on: id, thenClose: true)
        pair.interact()
        pair.server.send(down, on: id, thenClose: true)
        pair.interact()
        #expect(pair.server.received[id].map(checksum) == checksum(up))
        #expect(pair.server.received[id]?.readableBytes == up.readableBytes)
        #expect(pair.client.received[id].map(checksum) == checksum(down))
        #expect(pair.client.closed == [id])
        #expect(pair.server.closed == [id])
        #expect(pair.client.session.openStreamCount == 0)
        #expect(pair.server.session.openStreamCount == 0)
        #expect(pair.server.maximumUnconsumed <= 262_144)
        #expect(pair.client.maximumUnconsumed <= 262_144)
    }

    /// A slow reader stops the writer through the window, never by buffering more.
    @Test func slowConsumerBackpressure() throws {
        let pair = BackToBack()
        pair.server.consumePerRound = 10_000
        var random = TestRandom(seed: 11)
        let payload = random.bytes(4 * 1024 * 1024)
        let id = try pair.client.open()
        pair.client.send(payload, on: id, thenClose: true)
        var sawBlockedWriter = false
        pair.interact {
            let unconsumed = pair.server.unconsumed[id] ?? 0
            #expect(unconsumed <= 262_144)
            let pending = pair.client.pendingWrites[id]?.readableBytes ?? 0
            if pending > 0 && pair.client.session.sendWindow(streamID: id) == 0 {
                sawBlockedWriter = true
            }
        }
        #expect(sawBlockedWriter)
        #expect(pair.server.maximumUnconsumed <= 262_144)
        #expect(pair.server.maximumUnconsumed >= 200_000)
        #expect(pair.server.received[id].map(checksum) == checksum(payload))
        #expect(pair.server.halfClosed == [id])
    }

    /// A reader that consumes nothing: the writer must stall at exactly one window.
    @Test func stalledReaderHoldsExactlyOneWindow() throws {
        let pair = BackToBack()
        pair.server.consumePerRound = 0
        let id = try pair.client.open()
        pair.client.send(ByteBuffer(repeating: 3, count: 1 << 20), on: id)
        pair.interact()
        #expect(pair.server.unconsumed[id] == 262_144)
        #expect(pair.client.pendingWrites[id]?.readableBytes == (1 << 20) - 262_144)
        // Consuming reopens the window and the rest flows.
        pair.server.consumePerRound = nil
        pair.interact()
        #expect(pair.server.received[id]?.readableBytes == 1 << 20)
        #expect(pair.client.pendingWrites[id]?.readableBytes == 0)
    }

    @Test func manyConcurrentStreamsWithEcho() throws {
        let pair = BackToBack()
        pair.server.echo = true
        var random = TestRandom(seed: 3)
        var sent: [UInt32: UInt64] = [:]
        for _ in 0..<32 {
            let id = try pair.client.open()
            let data = random.bytes(300_000 + Int(random.next() % 50_000))
            sent[id] = checksum(data)
            pair.client.send(data, on: id, thenClose: true)
        }
        pair.interact()
        #expect(pair.server.opened.count == 32)
        for (id, sum) in sent {
            #expect(pair.server.received[id].map(checksum) == sum)
            #expect(pair.client.received[id].map(checksum) == sum)
        }
        #expect(pair.client.closed.count == 32)
        #expect(pair.server.closed.count == 32)
    }

    @Test func halfCloseEachWayIndependently() throws {
        let pair = BackToBack()
        let id = try pair.client.open()
        pair.client.send(ByteBuffer(string: "request"), on: id, thenClose: true)
        pair.interact()
        #expect(pair.server.halfClosed == [id])
        #expect(pair.server.closed.isEmpty)
        // The server can still answer after the client's FIN.
        pair.server.send(ByteBuffer(string: "response part 1 "), on: id)
        pair.interact()
        pair.server.send(ByteBuffer(string: "part 2"), on: id, thenClose: true)
        pair.interact()
        #expect(pair.client.received[id] == ByteBuffer(string: "response part 1 part 2"))
        #expect(pair.client.halfClosed == [id])
        #expect(pair.client.closed == [id])
        #expect(pair.server.closed == [id])

        // And the other way round: the server closes first.
        let second = try pair.client.open()
        pair.client.send(ByteBuffer(string: "x"), on: second)
        pair.interact()
        try pair.server.session.closeWrite(streamID: second)
        pair.server.process()
        pair.interact()
        #expect(pair.client.halfClosed.contains(second))
        pair.client.send(ByteBuffer(string: "after server FIN"), on: second, thenClose: true)
        pair.interact()
        #expect(pair.server.received[second] == ByteBuffer(string: "xafter server FIN"))
        #expect(pair.server.closed.contains(second))
        #expect(pair.client.closed.contains(second))
    }

    @Test func resetReachesThePeer() throws {
        let pair = BackToBack()
        let id = try pair.client.open()
        pair.client.send(ByteBuffer(repeating: 1, count: 1000), on: id)
        pair.interact()
        pair.client.session.reset(streamID: id)
        pair.client.process()
        #expect(pair.client.reset[id] == .local)
        pair.interact()
        #expect(pair.server.reset[id] == .remote)
        #expect(throws: YamuxError.self) { try pair.server.session.write(streamID: id, ByteBuffer(string: "x")) }
        #expect(pair.server.session.openStreamCount == 0)
        // The session goes on.
        let next = try pair.client.open()
        pair.client.send(ByteBuffer(string: "again"), on: next)
        pair.interact()
        #expect(pair.server.received[next] == ByteBuffer(string: "again"))
    }

    @Test func pingPong() throws {
        let pair = BackToBack()
        let opaque = try pair.server.session.ping(now: testEpoch)
        pair.server.process()
        pair.interact(now: testEpoch + .milliseconds(3))
        #expect(pair.server.events.contains(.pingRTT(opaque: opaque, rtt: .milliseconds(3))))
    }

    @Test func keepaliveKeepsAnAnsweringSessionAlive() {
        let configuration = YamuxConfiguration(keepAliveInterval: .seconds(30), keepAliveTimeout: .seconds(10))
        let pair = BackToBack(clientConfiguration: configuration, serverConfiguration: configuration)
        var now = testEpoch
        for _ in 0..<10 {
            now = now + .seconds(30)
            pair.client.session.tick(now: now)
            pair.server.session.tick(now: now)
            pair.interact(now: now + .milliseconds(1))
        }
        #expect(pair.client.session.isActive && pair.server.session.isActive)
        let rtts = pair.client.events.filter { if case .pingRTT = $0 { true } else { false } }
        #expect(rtts.count >= 5)
    }

    @Test func keepaliveTimeoutWhenThePeerIsSilent() {
        let configuration = YamuxConfiguration(keepAliveInterval: .seconds(30), keepAliveTimeout: .seconds(10))
        let pair = BackToBack(clientConfiguration: configuration)
        pair.client.session.tick(now: testEpoch + .seconds(30))
        pair.client.process()
        // The ping is lost: nothing is delivered.
        _ = pair.client.takeWire()
        pair.client.session.tick(now: testEpoch + .seconds(40))
        pair.client.process()
        guard case .error(let error) = pair.client.closeReason else {
            Issue.record("expected an error close")
            return
        }
        #expect(error.code == .keepaliveTimeout)
        pair.interact()
        #expect(pair.server.closeReason == .remote(.internalError))
    }

    @Test func goAwayDrainsGracefully() throws {
        let pair = BackToBack()
        let id = try pair.client.open()
        pair.interact()
        pair.server.session.goAway(.normal)
        pair.server.process()
        pair.interact()
        #expect(pair.client.events.contains(.goAwayReceived(.normal)))
        #expect(throws: YamuxError.self) { try pair.client.open() }
        // The open stream finishes normally.
        pair.client.send(ByteBuffer(string: "last words"), on: id, thenClose: true)
        pair.server.send(ByteBuffer(string: "noted"), on: id, thenClose: true)
        pair.interact()
        #expect(pair.server.received[id] == ByteBuffer(string: "last words"))
        #expect(pair.client.closed == [id])
        // The server may still open streams towards the client (hashicorp/yamux allows it).
        let pushed = try pair.server.open()
        pair.interact()
        #expect(pair.client.opened == [pushed])
    }

    @Test func goAwayWithErrorEndsBothSessions() throws {
        let pair = BackToBack()
        let id = try pair.client.open()
        pair.interact()
        pair.client.session.goAway(.protocolError)
        pair.client.process()
        pair.interact()
        #expect(pair.client.closeReason == .local(.protocolError))
        #expect(pair.server.closeReason == .remote(.protocolError))
        #expect(pair.server.reset[id] == .sessionClosed)
    }

    @Test func backlogOverflowResetsTheExtraStreams() throws {
        let pair = BackToBack(serverConfiguration: YamuxConfiguration(acceptBacklog: 2, keepAliveInterval: nil))
        pair.server.autoAccept = false
        let ids = try (0..<4).map { _ in try pair.client.open() }
        pair.interact()
        #expect(pair.server.opened == Array(ids.prefix(2)))
        #expect(pair.client.reset[ids[2]] == .remote)
        #expect(pair.client.reset[ids[3]] == .remote)
        #expect(pair.client.session.openStreamCount == 2)
        #expect(pair.server.session.isActive)
    }

    @Test func windowOverflowByAMisbehavingPeer() throws {
        let pair = BackToBack()
        let id = try pair.client.open()
        pair.interact()
        // Bypass the client's flow control: 256 KiB + 1 in two frames.
        var wire = ByteBuffer()
        wire.writeYamuxFrame(.data(streamID: id, payload: ByteBuffer(repeating: 0, count: 262_144)))
        wire.writeYamuxFrame(.data(streamID: id, payload: ByteBuffer(repeating: 0, count: 1)))
        pair.server.consumePerRound = 0
        pair.server.session.receive(wire, now: testEpoch)
        pair.server.process()
        guard case .error(let error) = pair.server.closeReason else {
            Issue.record("expected a protocol error")
            return
        }
        #expect(error.code == .receiveWindowExceeded)
        pair.interact()
        #expect(pair.client.closeReason == .remote(.protocolError))
    }

    @Test func wrongParityFromThePeer() throws {
        let pair = BackToBack()
        // A "client" that opens an even id.
        pair.server.session.receive(encode([.windowUpdate(streamID: 4, flags: .syn)]), now: testEpoch)
        pair.server.process()
        pair.interact()
        #expect(pair.client.closeReason == .remote(.protocolError))
    }

    @Test func duplicateSynFromThePeer() throws {
        let pair = BackToBack()
        let id = try pair.client.open()
        pair.interact()
        pair.server.session.receive(encode([.windowUpdate(streamID: id, flags: .syn)]), now: testEpoch)
        pair.server.process()
        pair.interact()
        #expect(pair.client.closeReason == .remote(.protocolError))
        #expect(pair.client.reset[id] == .sessionClosed)
    }

    @Test func dataOnAnUnknownStreamFromThePeer() throws {
        let pair = BackToBack()
        pair.client.session.receive(encode([.data(streamID: 8, payload: ByteBuffer(string: "?"))]), now: testEpoch)
        pair.client.process()
        pair.interact()
        #expect(pair.server.closeReason == .remote(.protocolError))
    }
}
