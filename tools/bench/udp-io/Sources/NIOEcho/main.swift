// UDP echo on SwiftNIO: one event loop, vector reads of 64, a flush per read batch.
import NIOCore
import NIOPosix

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }
    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

let port = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 20001
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel = try DatagramBootstrap(group: group)
    .channelOption(.socketOption(.so_reuseaddr), value: 1)
    .channelOption(.socketOption(.so_rcvbuf), value: 8 << 20)
    .channelOption(.socketOption(.so_sndbuf), value: 8 << 20)
    .channelOption(.datagramVectorReadMessageCount, value: 64)
    .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 64 * 2048))
    .channelInitializer { $0.pipeline.addHandler(EchoHandler()) }
    .bind(host: "127.0.0.1", port: port).wait()
print("ready \(port)")
try channel.closeFuture.wait()
