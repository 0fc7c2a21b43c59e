import Foundation

/// An HTTP proxy that clients dial through with `CONNECT` (DESIGN §9): from `--proxy
/// http://host:port` or from `HTTPS_PROXY` / `https_proxy`, minus the hosts `NO_PROXY` /
/// `no_proxy` names. Only `http://` proxies (the CONNECT request travels in clear, as curl
/// does it); user and password in the URL become `Proxy-Authorization: Basic`.
public struct HTTPProxy: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// `user:password` for Basic authentication, if the URL had it.
    public var credentials: String?

    public init(host: String, port: Int, credentials: String? = nil) {
        self.host = host
        self.port = port
        self.credentials = credentials
    }

    /// Parses `http://[user:pass@]host[:port][/]` or `host:port`; the port defaults to 80
    /// with a scheme, and is required without one.
    public init?(parsing text: String) {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        var defaultPort: Int?
        if rest.lowercased().hasPrefix("http://") {
            rest = rest.dropFirst(7)
            defaultPort = 80
        } else if rest.contains("://") {
            return nil
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if let at = rest.lastIndex(of: "@") {
            let user = String(rest[..<at])
            credentials = user.removingPercentEncoding ?? user
            rest = rest[rest.index(after: at)...]
        }
        guard !rest.contains("/"), let (host, port) = HostPortParser.split(String(rest), defaultPort: defaultPort) else { return nil }
        self.host = host
        self.port = port
    }

    /// The `Proxy-Authorization` value, if credentials were given.
    public var authorization: String? {
        credentials.map { "Basic " + Data($0.utf8).base64EncodedString() }
    }

    /// The proxy without its credentials, for logs.
    public var description: String { "http://\(HostPortParser.join(host, port))" }

    /// The proxy to use for `targetHost`: `explicit` (`--proxy`, where `""` or `none` means
    /// none) wins; else `HTTPS_PROXY`/`https_proxy` unless `NO_PROXY`/`no_proxy` names the host.
    /// - Throws: ``HTTPProxyError`` for a proxy address that does not parse.
    public static func choose(explicit: String?, environment: [String: String], targetHost: String) throws(HTTPProxyError) -> HTTPProxy? {
        if let explicit {
            let trimmed = explicit.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed == "none" { return nil }
            guard let proxy = HTTPProxy(parsing: trimmed) else { throw HTTPProxyError(source: "--proxy", value: trimmed) }
            return proxy
        }
        for name in ["HTTPS_PROXY", "https_proxy"] {
            guard let value = environment[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { continue }
            let exclusions = environment["NO_PROXY"] ?? environment["no_proxy"] ?? ""
            if bypasses(targetHost, noProxy: exclusions) { return nil }
            guard let proxy = HTTPProxy(parsing: value) else { throw HTTPProxyError(source: name, value: value) }
            return proxy
        }
        return nil
    }

    /// Whether `NO_PROXY` names `host`: `*`; an exact name or IP; a domain (`example.com` or
    /// `.example.com`) that the host is or ends in. Ports in entries are ignored.
    public static func bypasses(_ host: String, noProxy: String) -> Bool {
        let target = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        for rawEntry in noProxy.split(separator: ",") {
            var entry = rawEntry.trimmingCharacters(in: .whitespaces).lowercased()
            if entry == "*" { return true }
            if entry.hasPrefix("["), let close = entry.firstIndex(of: "]") {
                entry = String(entry[entry.index(after: entry.startIndex)..<close])
            } else if entry.filter({ $0 == ":" }).count == 1, let colon = entry.firstIndex(of: ":") {
                entry = String(entry[..<colon])
            }
            if entry.hasPrefix("*.") { entry = String(entry.dropFirst(1)) }
            let domain = entry.hasPrefix(".") ? String(entry.dropFirst()) : entry
            guard !domain.isEmpty else { continue }
            if target == domain || target.hasSuffix("." + domain) { return true }
        }
        return false
    }
}

/// A proxy setting that is not an `http://host:port` URL.
public struct HTTPProxyError: Error, CustomStringConvertible, Sendable {
    public var source: String
    public var value: String
    public var description: String {
        "\(source) is not an http://host:port proxy address" + (value.contains("@") ? "" : ": \(value)")
    }
}
