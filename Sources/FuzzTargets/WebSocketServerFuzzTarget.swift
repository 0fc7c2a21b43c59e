import NIOCore
import NIOEmbedded
import WebSocketTransport

/// The relay's WebSocket service as a client sees it (DESIGN §9): the server handshake
/// handlers, then the WebSocket codec and ``WebSocketStreamHandler``, in an `EmbeddedChannel`,
/// fed the input in chunks (the first byte seeds the chunk sizes, so partial heads and frames
/// are exercised). Properties: nothing traps (a handler that got a type it did not expect
/// would: NIO force-casts), what reaches the stream's user is bytes only, never more than the
/// input, and never before an upgrade was answered with 101.
public enum WebSocketServerFuzzTarget {
    /// The stream's user: counts the bytes it gets.
    final class Sink: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var received = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += unwrapInboundIn(data).readableBytes
        }
    }

    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        var random = FuzzRandom(seed: UInt64(input.u8()))
        let stream = Array(input.rest())
        let channel = EmbeddedChannel()
        let sink = Sink()
        let upgraded = UpgradeFlag()
        do {
            try WebSocketServerHandshake.install(
                on: channel.pipeline.syncOperations, path: "/zrc-relay/v1",
                outcome: { if case .upgraded = $0 { upgraded.value = true } },
                streamReady: { pipeline in try pipeline.addHandler(sink) })
            _ = try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        } catch {
            fuzzCheck(false, "set-up failed: \(error)")
            return
        }
        var offset = 0
        while offset < stream.count, channel.isActive {
            let size = 1 + Int(random.next() % 512)
            let chunk = stream[offset..<min(stream.count, offset + size)]
            offset += chunk.count
            do {
                try channel.writeInbound(channel.allocator.buffer(bytes: chunk))
            } catch {
                break  // a handler closed the channel or reported an error: fine
            }
            while let _ = try? channel.readOutbound(as: ByteBuffer.self) {}
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(11))
        fuzzCheck(sink.received <= stream.count, "the stream got more bytes than came in")
        fuzzCheck(sink.received == 0 || upgraded.value, "bytes reached the stream without an upgrade")
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    final class UpgradeFlag: @unchecked Sendable { var value = false }

    public static func seeds() -> [[UInt8]] {
        let upgrade = Array(("GET /zrc-relay/v1 HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Protocol: zrc-relay.v1\r\n\r\n").utf8)
        // A masked binary frame "hello", a ping, a fragmented message, a close.
        let binary: [UInt8] = [0x82, 0x85, 1, 2, 3, 4] + Array("hello".utf8).enumerated().map { $0.element ^ UInt8($0.offset % 4 + 1) }
        let ping: [UInt8] = [0x89, 0x80, 9, 9, 9, 9]
        let fragments: [UInt8] = [0x02, 0x81, 0, 0, 0, 0, 0x41, 0x80, 0x81, 0, 0, 0, 0, 0x42]
        let close: [UInt8] = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]
        return [
            [7] + upgrade + binary + ping + fragments + close,
            [200] + upgrade,
            [1] + Array("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
            [3] + Array("GET /zrc-relay/v1 HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
            [5] + upgrade + [0x81, 0x81, 0, 0, 0, 0, 0x41],
            [9] + upgrade + [0x82, 0xFF, 0, 0, 0, 0, 0, 0x20, 0, 0],
            [11] + Array("POST /zrc-relay/v1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".utf8),
        ]
    }
}
