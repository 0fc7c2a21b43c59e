import NIOCore
import NIOEmbedded
import Testing
import Yamux
@testable import YamuxNIO

/// The multiplexer on an in-memory channel, fed hostile frame sequences.
@Suite struct YamuxMultiplexerTests {
    func frameBytes(_ header: YamuxFrameHeader) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeYamuxHeader(header)
        return buffer
    }

    func writtenHeaders(_ channel: EmbeddedChannel) throws -> [YamuxFrameHeader] {
        var all = ByteBuffer()
        while var chunk = try channel.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&chunk) }
        var parser = YamuxFrameParser(maximumDataLength: 1 << 20)
        parser.append(all)
        var headers: [YamuxFrameHeader] = []
        while let frame = try parser.nextFrame() { headers.append(frame.header) }
        return headers
    }

    /// A refused stream used to leave its close promise pending ("leaking promise" trap in
    /// debug builds): one unexpected SYN stopped the relay.
    @Test func refusedStreamsAreResetAndFinished() throws {
        let channel = EmbeddedChannel()
        let multiplexer = YamuxMultiplexer(role: .server, eventLoop: channel.eventLoop) { stream in stream.id == 1 }
        try channel.pipeline.syncOperations.addHandler(multiplexer)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        for id in stride(from: UInt32(5), through: 45, by: 2) {
            try channel.writeInbound(frameBytes(YamuxFrameHeader(type: .windowUpdate, flags: .syn, streamID: id, length: 0)))
        }
        let headers = try writtenHeaders(channel)
        #expect(headers.filter { $0.flags.contains(.rst) }.count == 21)
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    @Test func aPingFloodClosesTheConnection() throws {
        let channel = EmbeddedChannel()
        let multiplexer = YamuxMultiplexer(role: .server, eventLoop: channel.eventLoop) { _ in true }
        try channel.pipeline.syncOperations.addHandler(multiplexer)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var flood = ByteBuffer()
        for i in 0..<2000 { flood.writeYamuxHeader(YamuxFrameHeader(type: .ping, flags: .syn, streamID: 0, length: UInt32(i))) }
        try? channel.writeInbound(flood)
        let headers = try writtenHeaders(channel)
        #expect(headers.filter { $0.type == .ping }.count <= 1000)
        #expect(headers.last?.type == .goAway)
        #expect(!channel.isActive)
    }
}
