import EgressProxy
import NIOCore

/// Sits between an application connection and its ``YamuxStreamBridge`` (forwarded requests
/// only, not `CONNECT`) and runs the destination's bytes through ``HTTPResponseHeadFilter``.
///
/// While a head is incomplete its bytes are held (at most the filter's limit) and the write
/// promises with them; they complete when the filtered bytes are written, so the bridge's
/// backpressure (acknowledge stream data once the socket took it) still holds.
final class ResponseHeadFilterHandler: ChannelOutboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: used only on its channel's loop.
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var filter = HTTPResponseHeadFilter()
    private var held: [EventLoopPromise<Void>] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if filter.isPassingThrough, held.isEmpty {
            context.write(data, promise: promise)
            return
        }
        let bytes = unwrapOutboundIn(data)
        if let promise { held.append(promise) }
        let out = filter.process(bytes.readableBytesView)
        guard !out.isEmpty else { return }
        writeHeld(out, context: context)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // The stream ended inside a head: send what we have, unfiltered.
        let rest = filter.drain()
        if !rest.isEmpty || !held.isEmpty {
            writeHeld(rest, context: context)
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        let error = ChannelError.ioOnClosedChannel
        for promise in held { promise.fail(error) }
        held.removeAll()
    }

    private func writeHeld(_ bytes: [UInt8], context: ChannelHandlerContext) {
        let waiting = held
        held = []
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { result in
            for held in waiting {
                switch result {
                case .success: held.succeed(())
                case .failure(let error): held.fail(error)
                }
            }
        }
        context.write(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: promise)
    }
}
