/// The headers an HTTP proxy must not forward (RFC 9110 §7.6.1), and `Proxy-*` (DESIGN §12).
///
/// Removed: `Connection` and every header it names, `Keep-Alive`, `TE`, `Trailer`, `Upgrade`
/// (put back by the agent for a WebSocket upgrade), and any name starting with `Proxy-`
/// (`Proxy-Connection`, `Proxy-Authorization`, …).
///
/// Kept on purpose: `Transfer-Encoding` and `Content-Length`. The agent does not re-frame
/// bodies: it passes the client's body bytes through as they come, so the framing headers
/// that describe those bytes must travel with them.
public enum HopByHopHeaders {
    static let alwaysRemoved: Set<String> = ["connection", "keep-alive", "te", "trailer", "upgrade"]

    /// The headers to forward, in order.
    public static func filter(_ headers: [HTTPHeader]) -> [HTTPHeader] {
        var named = alwaysRemoved
        for header in headers where header.name.lowercased() == "connection" || header.name.lowercased() == "proxy-connection" {
            for token in header.value.split(separator: ",") {
                let name = token.trimmingASCIIWhitespace().lowercased()
                // Never let Connection strip the body framing.
                if name != "transfer-encoding", name != "content-length", name != "host" { named.insert(name) }
            }
        }
        return headers.filter { header in
            let name = header.name.lowercased()
            return !named.contains(name) && !name.hasPrefix("proxy-")
        }
    }

    /// Whether the request asks for a WebSocket upgrade (`Upgrade: websocket` and a
    /// `Connection` header naming `upgrade`).
    public static func isWebSocketUpgrade(_ head: HTTPRequestHead) -> Bool {
        let upgrades = head.values("Upgrade").flatMap { $0.split(separator: ",") }.map { $0.trimmingASCIIWhitespace().lowercased() }
        let connection = head.values("Connection").flatMap { $0.split(separator: ",") }.map { $0.trimmingASCIIWhitespace().lowercased() }
        return head.method == "GET" && upgrades.contains("websocket") && connection.contains("upgrade")
    }
}
