import Logging
import NIOCore
import NIOSSL
import WebSocketTransport
import YamuxNIO

/// The control port's pipeline, for the plain and the named tunnel server alike: TLS when
/// configured, then the yamux session — directly, or, with `websocketPath` (`tunnel server
/// --websocket`), behind a gate that also takes a WebSocket upgrade at that path and then runs
/// the same session in binary messages (DESIGN §9, the relay's rules).
enum TunnelControlPipeline {
    static func install(on channel: any Channel, tls: NIOSSLContext?, websocketPath: String?,
                        multiplexer: YamuxMultiplexer, logger: Logger) throws {
        let pipeline = channel.pipeline.syncOperations
        if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls)) }
        guard let path = websocketPath else {
            try pipeline.addHandler(multiplexer)
            return
        }
        try pipeline.addHandler(WebSocketSniffGate(path: path, logger: logger) { pipeline, _ in
            try pipeline.addHandler(multiplexer)
        })
    }
}
