import NIOCore
import NIOEmbedded
import NIOHTTP1

/// Watches the response bytes coming back through a tunnel with NIOHTTP1's
/// `HTTPResponseDecoder`, for the access log, the status metrics and the response timeout:
/// it reports each response's status and end. The bytes themselves are passed on unchanged
/// by the caller whatever it reports.
///
/// The decoder is told each forwarded request's method (responses to `HEAD` have no body).
/// When it cannot follow (a malformed response) it reports ``Event/lost`` once and stays
/// quiet; the connection goes on as a plain byte bridge. After a `101` the bytes are not
/// HTTP any more and nothing is reported.
///
/// Not thread-safe: use it on one event loop.
final class HTTPResponseObserver {
    enum Event: Equatable {
        /// A final response head (informational 1xx heads are not reported; 101 is).
        case head(status: Int)
        /// The response ended.
        case end
        /// The decoder could not follow; nothing more will be reported.
        case lost
    }

    private let decoder: EmbeddedChannel
    private var isLost = false
    private var isUpgraded = false

    init() {
        decoder = EmbeddedChannel(handler: ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
    }

    deinit {
        _ = try? decoder.finish(acceptAlreadyClosed: true)
    }

    /// Records that a request with `head` went to the local service (in order).
    func requestSent(_ head: HTTPRequestHead) {
        guard !isLost, !isUpgraded else { return }
        do {
            try decoder.writeOutbound(HTTPClientRequestPart.head(head))
            while try decoder.readOutbound(as: HTTPClientRequestPart.self) != nil {}
        } catch {
            isLost = true
        }
    }

    /// Stops observing (the connection became a raw bridge); later bytes are not parsed or
    /// kept.
    func stop() { isUpgraded = true }

    /// Feeds response bytes; returns what they completed.
    func feed(_ bytes: ByteBuffer) -> [Event] {
        guard !isLost, !isUpgraded else { return [] }
        var events: [Event] = []
        do {
            try decoder.writeInbound(bytes)
            while let part = try decoder.readInbound(as: HTTPClientResponsePart.self) {
                switch part {
                case .head(let head):
                    events.append(.head(status: Int(head.status.code)))
                    if head.status == .switchingProtocols { isUpgraded = true }
                case .body:
                    break
                case .end:
                    events.append(.end)
                }
            }
        } catch {
            isLost = true
            events.append(.lost)
        }
        return events
    }
}
