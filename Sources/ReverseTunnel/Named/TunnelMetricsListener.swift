import NIOCore
import NIOHTTP1
import NIOPosix

/// `--metrics-listen` of the tunnel server: `GET /metrics` answers the Prometheus text of a
/// ``TunnelMetrics``; anything else is 404. One small response per request.
public enum TunnelMetricsListener {
    /// Binds `host:port` and serves until the returned channel is closed.
    public static func bind(host: String, port: Int, metrics: TunnelMetrics, group: any EventLoopGroup) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(metrics: metrics))
                    }
                }
            }
            .bind(host: host, port: port).get()
    }
}

/// Answers each request head; request bodies are ignored.
final class MetricsHTTPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: TunnelMetrics
    init(metrics: TunnelMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let found = head.method == .GET && (head.uri == "/metrics" || head.uri.hasPrefix("/metrics?"))
        var body = context.channel.allocator.buffer(capacity: 2048)
        if found { body.writeBytes(metrics.render()) } else { body.writeString("not found\n") }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: found ? .ok : .notFound, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
