/// A WebSocket endpoint as clients name it (DESIGN §9): `wss://host:port/path`, or
/// `ws://host:port/path` for a plain listener. The port defaults to 443 (`wss`) or 80 (`ws`),
/// the path to `/`.
public struct WebSocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// `wss` (TLS) or `ws`.
    public var tls: Bool
    /// Host name or IP address (IPv6 without brackets).
    public var host: String
    public var port: Int
    /// The request path, starting with `/`.
    public var path: String

    public init(tls: Bool, host: String, port: Int, path: String) {
        self.tls = tls
        self.host = host
        self.port = port
        self.path = path
    }

    /// Parses `ws://` and `wss://` URLs; `nil` for anything else (other schemes, no host, a
    /// bad port, user info, a fragment).
    public init?(parsing text: String) {
        let lower = text.lowercased()
        let rest: Substring
        if lower.hasPrefix("wss://") {
            tls = true
            rest = text.dropFirst(6)
        } else if lower.hasPrefix("ws://") {
            tls = false
            rest = text.dropFirst(5)
        } else {
            return nil
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        var path = String(rest.dropFirst(authority.count))
        if path.isEmpty { path = "/" }
        guard !path.hasPrefix("?"), !path.contains("#"), !authority.contains("@"),
              path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
              let (host, port) = HostPortParser.split(String(authority), defaultPort: tls ? 443 : 80) else { return nil }
        self.host = host
        self.port = port
        self.path = path
    }

    /// `host:port` (IPv6 in brackets), as the `Host` header and `CONNECT` want it.
    public var authority: String { HostPortParser.join(host, port) }

    public var description: String { "\(tls ? "wss" : "ws")://\(authority)\(path)" }
}

/// `host[:port]` with IPv6 in brackets (the host comes back without them).
public enum HostPortParser {
    /// `nil` for an empty host, a bad port, or no port when there is no `defaultPort`.
    public static func split(_ authority: String, defaultPort: Int? = nil) -> (String, Int)? {
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
            guard !host.contains(":") else { return nil }
        } else {
            host = Substring(authority)
        }
        let port: Int
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else { return nil }
            port = value
        } else {
            guard let defaultPort else { return nil }
            port = defaultPort
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else { return nil }
        return (String(host), port)
    }

    static func join(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
