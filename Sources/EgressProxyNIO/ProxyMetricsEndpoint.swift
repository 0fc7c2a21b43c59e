import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP endpoint for `--metrics-listen`: `GET /metrics` (Prometheus text) and
/// `GET /health`. Requests are small and answered at once; bodies are ignored.
enum ProxyMetricsEndpoint {
    static func start(host: String, port: Int, group: any EventLoopGroup,
                      render: @escaping @Sendable () -> String) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(render: render))
                }
            }
            .bind(host: host, port: port).get()
    }

    final class MetricsHandler: ChannelInboundHandler, @unchecked Sendable {
        // @unchecked Sendable: used only on its channel's loop.
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let render: @Sendable () -> String
        private var path = ""

        init(render: @escaping @Sendable () -> String) {
            self.render = render
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                path = head.uri
            case .body:
                break
            case .end:
                let (status, body): (HTTPResponseStatus, String)
                switch path {
                case "/metrics": (status, body) = (.ok, render())
                case "/health": (status, body) = (.ok, "ok\n")
                default: (status, body) = (.notFound, "not found\n")
                }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: path == "/metrics" ? "text/plain; version=0.0.4" : "text/plain")
                headers.add(name: "Content-Length", value: "\(body.utf8.count)")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
