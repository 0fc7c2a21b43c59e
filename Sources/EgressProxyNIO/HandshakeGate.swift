import EgressProxy
import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Waits for the TLS handshake, then hands the connection and the agent's identity (its
/// certificate's CN) on; logs and closes on a refused handshake.
final class HandshakeGate: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: used only on its channel's loop.
    typealias InboundIn = ByteBuffer

    private let logger: Logger
    private let onReady: (ChannelHandlerContext, String) -> Void
    private var done = false

    init(logger: Logger, onReady: @escaping (ChannelHandlerContext, String) -> Void) {
        self.logger = logger
        self.onReady = onReady
    }

    /// A peer that connects and never finishes the handshake is dropped after
    /// ``ProxyDefaults/handshakeTimeout``.
    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let logger = self.logger
        let timer = context.eventLoop.scheduleTask(in: TimeAmount(ProxyDefaults.handshakeTimeout)) {
            logger.notice("no TLS handshake in time; closing")
            channel.close(promise: nil)
        }
        self.timer = timer
    }

    private var timer: Scheduled<Void>?

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, !done {
            done = true
            timer?.cancel()
            let certificate = try? context.channel.pipeline.syncOperations.nioSSL_peerCertificate()
            let identity = certificate.map { ProxyTLS.commonName(of: $0) } ?? "?"
            onReady(context, identity)
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        timer?.cancel()
        if !done {
            done = true
            logger.warning("agent refused in the TLS handshake", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }
}
