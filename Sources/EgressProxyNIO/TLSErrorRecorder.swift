import NIOConcurrencyHelpers
import NIOCore

/// Keeps the first error the TLS layer reports, so a refused certificate can be told from a
/// lost connection.
final class TLSErrorRecorder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let box: NIOLockedValueBox<(any Error)?>

    init(_ box: NIOLockedValueBox<(any Error)?>) {
        self.box = box
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        box.withLockedValue { if $0 == nil { $0 = error } }
        context.fireErrorCaught(error)
    }
}
