/// What the agent does with one application request (DESIGN §12): which destination to open
/// and which bytes to send first once the server answers `OK`.
public struct ProxyRequestPlan: Hashable, Sendable {
    /// How the connection goes on after `OK`.
    public enum Mode: Hashable, Sendable {
        /// `CONNECT`: answer `200 Connection Established`, then opaque bytes both ways.
        case connect
        /// An absolute-form request: send ``head`` (rewritten to origin form), then the
        /// client's bytes as they come (body, or WebSocket frames after an upgrade); the
        /// destination's bytes go back untouched.
        case forward(head: [UInt8], isUpgrade: Bool)
    }

    public var host: String
    public var port: Int
    public var mode: Mode

    /// Why a request is refused with 400.
    public struct Refusal: Error, Hashable, Sendable {
        public var reason: String
    }

    /// Plans a request; a refusal becomes 400 `bad_request`.
    public static func plan(_ head: HTTPRequestHead) throws(Refusal) -> ProxyRequestPlan {
        if head.method == "CONNECT" {
            guard let (host, port) = splitAuthority(head.target, defaultPort: nil) else {
                throw Refusal(reason: "CONNECT needs host:port")
            }
            return ProxyRequestPlan(host: host, port: port, mode: .connect)
        }
        let lower = head.target.lowercased()
        guard lower.hasPrefix("http://") else {
            if lower.hasPrefix("https://") { throw Refusal(reason: "https:// URLs go through CONNECT") }
            throw Refusal(reason: "not an absolute-form http:// request")
        }
        let afterScheme = head.target.dropFirst("http://".count)
        let authorityEnd = afterScheme.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? afterScheme.endIndex
        let authority = String(afterScheme[afterScheme.startIndex..<authorityEnd])
        guard !authority.contains("@") else { throw Refusal(reason: "user info in the URL") }
        guard let (host, port) = splitAuthority(authority, defaultPort: 80) else { throw Refusal(reason: "bad host in the URL") }
        var path = String(afterScheme[authorityEnd...])
        if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }

        let contentLengths = Set(head.values("Content-Length").flatMap { $0.split(separator: ",").map { $0.trimmingASCIIWhitespace() } })
        if !head.values("Transfer-Encoding").isEmpty, !contentLengths.isEmpty {
            throw Refusal(reason: "both Transfer-Encoding and Content-Length")
        }
        guard contentLengths.count <= 1, contentLengths.allSatisfy({ !$0.isEmpty && $0.count <= 19 && $0.allSatisfy { $0.isASCII && $0.isNumber } }) else {
            throw Refusal(reason: "bad Content-Length")
        }

        let upgrade = HopByHopHeaders.isWebSocketUpgrade(head)
        var out = "\(head.method) \(path) HTTP/1.1\r\n"
        out += "Host: \(authority)\r\n"
        for header in HopByHopHeaders.filter(head.headers) where header.name.lowercased() != "host" {
            out += "\(header.name): \(header.value)\r\n"
        }
        if upgrade {
            out += "Connection: Upgrade\r\nUpgrade: websocket\r\n"
        } else {
            // One request per client connection (one stream each): the destination closes
            // after its response, which ends the stream and the client connection.
            out += "Connection: close\r\n"
        }
        out += "\r\n"
        return ProxyRequestPlan(host: host, port: port, mode: .forward(head: Array(out.utf8), isUpgrade: upgrade))
    }

    /// Splits `host:port` (`[v6]:port`); `defaultPort` when the port is missing (none for
    /// CONNECT). The host is validated and normalized.
    static func splitAuthority(_ text: String, defaultPort: Int?) -> (String, Int)? {
        var hostPart = Substring(text)
        var port = defaultPort
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            hostPart = text[text.startIndex...close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = ProxyLine.parsePort(rest.dropFirst().utf8) else { return nil }
                port = p
            }
        } else if let colon = text.lastIndex(of: ":") {
            hostPart = text[..<colon]
            guard let p = ProxyLine.parsePort(text[text.index(after: colon)...].utf8) else { return nil }
            port = p
        }
        guard let port, let host = ProxyHost.normalizedHost(hostPart.utf8), ProxyHost(host) != nil else { return nil }
        return (host, port)
    }
}
