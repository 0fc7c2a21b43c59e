import NIOCore
import Testing

@testable import Yamux

/// Frames byte for byte as hashicorp/yamux writes them, built by hand from `spec.md` and
/// from what its `OpenStream`, `AcceptStream`, `Write`, `Read`, `Close`, `Ping` and
/// `GoAway` send with the default configuration (256 KiB window).
@Suite struct YamuxHashicorpFixtureTests {
    /// Client `OpenStream()`: WindowUpdate, SYN, stream 1, delta 0.
    static let openStream1: [UInt8] = [0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]
    /// Server `AcceptStream()`: WindowUpdate, ACK, stream 1, delta 0.
    static let acceptStream1: [UInt8] = [0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]
    /// `Write("hello")` on stream 1: Data, no flags, length 5, then the bytes.
    static let dataHello1: [UInt8] = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x68, 0x65, 0x6C, 0x6C, 0x6F,
    ]
    /// `Read` after 128 KiB consumed: WindowUpdate, stream 1, delta 0x20000.
    static let windowUpdate128K1: [UInt8] = [0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00]
    /// `Close()` on stream 1: WindowUpdate, FIN, delta 0.
    static let fin1: [UInt8] = [0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]
    /// Backlog overflow on stream 3: WindowUpdate, RST.
    static let rst3: [UInt8] = [0x00, 0x01, 0x00, 0x08, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00]
    /// `Ping()` (the first one has id 0): Ping, SYN, stream 0, opaque 0.
    static let pingSYN0: [UInt8] = [0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
    /// Its answer: Ping, ACK, opaque 0.
    static let pingACK0: [UInt8] = [0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
    /// `GoAway()`: GoAway, code 0.
    static let goAwayNormal: [UInt8] = [0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
    /// GoAway protocol error.
    static let goAwayProtocolError: [UInt8] = [0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]
    /// MaxStreamWindowSize 1 MiB: the SYN carries delta 1 MiB - 256 KiB = 0xC0000.
    static let openStream1BigWindow: [UInt8] = [0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0C, 0x00, 0x00]

    @Test func decodesEveryFixture() throws {
        var parser = YamuxFrameParser(maximumDataLength: 256 * 1024)
        for fixture in [
            Self.openStream1, Self.acceptStream1, Self.dataHello1, Self.windowUpdate128K1, Self.fin1, Self.rst3,
            Self.pingSYN0, Self.pingACK0, Self.goAwayNormal, Self.goAwayProtocolError, Self.openStream1BigWindow,
        ] {
            parser.append(bytes(fixture))
        }
        var frames: [YamuxFrame] = []
        while let frame = try parser.nextFrame() {
            frames.append(frame)
        }
        #expect(
            frames == [
                .windowUpdate(streamID: 1, flags: .syn, delta: 0),
                .windowUpdate(streamID: 1, flags: .ack, delta: 0),
                .data(streamID: 1, payload: ByteBuffer(string: "hello")),
                .windowUpdate(streamID: 1, delta: 131_072),
                .windowUpdate(streamID: 1, flags: .fin),
                .windowUpdate(streamID: 3, flags: .rst),
                .ping(flags: .syn, opaque: 0),
                .ping(flags: .ack, opaque: 0),
                .goAway(.normal),
                .goAway(.protocolError),
                .windowUpdate(streamID: 1, flags: .syn, delta: 0xC_0000),
            ])
    }

    @Test func ourFramesMatchHashicorpBytes() throws {
        var client = YamuxSession(role: .client, configuration: YamuxConfiguration(keepAliveInterval: nil), now: testEpoch)
        let id = try client.openStream()
        #expect(id == 1)
        #expect(Array(encode(client.drainFrames()).readableBytesView) == Self.openStream1)
        #expect(try client.write(streamID: 1, ByteBuffer(string: "hello")) == 5)
        #expect(Array(encode(client.drainFrames()).readableBytesView) == Self.dataHello1)
        try client.closeWrite(streamID: 1)
        #expect(Array(encode(client.drainFrames()).readableBytesView) == Self.fin1)
        _ = try client.ping(now: testEpoch)
        #expect(Array(encode(client.drainFrames()).readableBytesView) == Self.pingSYN0)
        client.goAway(.normal)
        #expect(Array(encode(client.drainFrames()).readableBytesView) == Self.goAwayNormal)

        var big = YamuxSession(
            role: .client, configuration: YamuxConfiguration(receiveWindow: 1 << 20, keepAliveInterval: nil),
            now: testEpoch)
        _ = try big.openStream()
        #expect(Array(encode(big.drainFrames()).readableBytesView) == Self.openStream1BigWindow)
    }

    /// A server session fed a hashicorp client's bytes: open, hello, FIN, ping.
    @Test func serverSessionHandlesHashicorpClientConversation() throws {
        var server = YamuxSession(role: .server, configuration: YamuxConfiguration(keepAliveInterval: nil), now: testEpoch)
        server.receive(bytes(Self.openStream1 + Self.dataHello1 + Self.fin1 + Self.pingSYN0), now: testEpoch)
        let actions = server.drainActions()
        #expect(
            actions == [
                .streamOpened(streamID: 1),
                .streamData(streamID: 1, ByteBuffer(string: "hello")),
                .streamHalfClosed(streamID: 1),
                .writeFrame(.ping(flags: .ack, opaque: 0)),
            ])
        try server.acceptStream(1)
        #expect(Array(encode(server.drainFrames()).readableBytesView) == Self.acceptStream1)
        #expect(try server.write(streamID: 1, ByteBuffer(string: "hello")) == 5)
        try server.closeWrite(streamID: 1)
        let closing = server.drainActions()
        #expect(closing.events == [.streamClosed(streamID: 1)])
        #expect(server.openStreamCount == 0)
        // hashicorp/yamux may still send a WindowUpdate for a stream that closed: ignored.
        server.receive(bytes(Self.windowUpdate128K1), now: testEpoch)
        #expect(server.drainActions().isEmpty)
        #expect(server.isActive)
    }

    /// A client session fed a hashicorp server's refusal (backlog RST) and GoAway.
    @Test func clientSessionHandlesRefusalAndGoAway() throws {
        var client = YamuxSession(role: .client, configuration: YamuxConfiguration(keepAliveInterval: nil), now: testEpoch)
        _ = try client.openStream()
        _ = try client.openStream()
        #expect(try client.openStream() == 5)
        _ = client.drainActions()
        client.receive(bytes(Self.rst3 + Self.goAwayNormal), now: testEpoch)
        #expect(
            client.drainActions() == [
                .streamReset(streamID: 3, reason: .remote),
                .goAwayReceived(.normal),
            ])
        #expect(throws: YamuxError.self) { try client.openStream() }
        client.receive(bytes(Self.goAwayProtocolError), now: testEpoch)
        #expect(
            client.drainActions() == [
                .streamReset(streamID: 1, reason: .sessionClosed),
                .streamReset(streamID: 5, reason: .sessionClosed),
                .sessionClosed(.remote(.protocolError)),
            ])
    }
}
