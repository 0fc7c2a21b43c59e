import NIOCore

/// Closes a bridged destination connection after ``ProxyDefaults/idleTimeout`` without a byte
/// either way (the bridge then ends the stream).
final class IdleCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
