import NIOCore
import NIOHTTP1

/// The request head the server passes on (DESIGN §11): the caller's head, parsed by NIOHTTP1,
/// with `X-Forwarded-For`, `X-Forwarded-Host` and `X-Forwarded-Proto` set by the server
/// (any the caller sent are removed first), written back in HTTP/1.x form with the
/// caller's header order and spelling.
public enum ForwardedHead {
    /// Removes every `X-Forwarded-For/-Host/-Proto` and appends the server's own.
    /// - Parameters:
    ///   - headers: The caller's headers.
    ///   - clientAddress: The caller's IP address as the server saw it.
    ///   - proto: `http` or `https`.
    public static func rewrite(_ headers: inout HTTPHeaders, clientAddress: String, proto: String) {
        let host = headers.first(name: "host")
        headers.remove(name: "x-forwarded-for")
        headers.remove(name: "x-forwarded-host")
        headers.remove(name: "x-forwarded-proto")
        headers.add(name: "X-Forwarded-For", value: clientAddress)
        if let host { headers.add(name: "X-Forwarded-Host", value: host) }
        headers.add(name: "X-Forwarded-Proto", value: proto)
    }

    /// Writes `head` as HTTP/1.x bytes (request line, headers, empty line).
    public static func serialize(_ head: HTTPRequestHead, into buffer: inout ByteBuffer) {
        buffer.writeString(head.method.rawValue)
        buffer.writeString(" ")
        buffer.writeString(head.uri)
        buffer.writeString(" HTTP/\(head.version.major).\(head.version.minor)\r\n")
        for (name, value) in head.headers {
            buffer.writeString(name)
            buffer.writeString(": ")
            buffer.writeString(value)
            buffer.writeString("\r\n")
        }
        buffer.writeString("\r\n")
    }

    /// Whether the request turns the connection into a raw byte bridge once its head has
    /// passed: `CONNECT`, or `Connection: upgrade` with an `Upgrade` header (WebSocket).
    public static func isUpgrade(_ head: HTTPRequestHead) -> Bool {
        if head.method == .CONNECT { return true }
        guard head.headers.contains(name: "upgrade") else { return false }
        return head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" }
    }

    /// The path of the request target without its query (for the access log).
    public static func pathWithoutQuery(_ uri: String) -> String {
        let cut = uri.firstIndex { $0 == "?" || $0 == "#" } ?? uri.endIndex
        return String(uri[..<cut].prefix(512))
    }
}
