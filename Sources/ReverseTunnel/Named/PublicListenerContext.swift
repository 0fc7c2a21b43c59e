import Logging
import NIOCore
import YamuxNIO

/// What a public connection asks the server for its tunnel.
enum TunnelResolution {
    /// A stream towards the name's client is being opened.
    case stream(EventLoopFuture<YamuxStreamChannel>)
    /// The server answers itself (404 unknown, 502 no client).
    case error(TunnelHTTPError)
}

/// What every public connection of one listener shares.
struct PublicListenerContext: Sendable {
    let router: TunnelHostRouter
    /// `http` or `https` (for `X-Forwarded-Proto`).
    let proto: String
    let headTimeout: TimeAmount
    let responseTimeout: TimeAmount
    let maximumHeadLength: Int
    /// How long a request body may pause before the connection is closed.
    var bodyIdleTimeout: TimeAmount = NamedTunnelDefaults.bodyIdleTimeout
    let metrics: TunnelMetrics?
    let logger: Logger
    let resolve: @Sendable (TunnelName) -> TunnelResolution
}
