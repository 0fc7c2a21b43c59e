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

/// The server's own short answers on a public connection (DESIGN §11), always followed by a
/// close.
public struct TunnelHTTPError: Error, Equatable, Sendable {
    /// The status code.
    public let status: Int
    /// The one-line plain-text body.
    public let message: String
    /// Which `zrc_tunnel_errors_total` kind it counts as, if any.
    public let kind: TunnelErrorKind?

    public static let missingHost = TunnelHTTPError(status: 400, message: "missing Host header", kind: nil)
    public static let malformedRequest = TunnelHTTPError(status: 400, message: "malformed request", kind: nil)
    public static func badName(_ problem: TunnelName.Problem) -> TunnelHTTPError {
        TunnelHTTPError(status: 400, message: problem.description, kind: nil)
    }
    public static let unknownTunnel = TunnelHTTPError(status: 404, message: "no tunnel with this name", kind: .notFound)
    public static let requestTimeout = TunnelHTTPError(status: 408, message: "request head not received in time", kind: .timeout)
    public static let misdirected = TunnelHTTPError(
        status: 421, message: "every request on a connection must carry the same Host", kind: .misdirected)
    public static let headTooLarge = TunnelHTTPError(status: 431, message: "request head larger than 64 KiB", kind: nil)
    public static let noClient = TunnelHTTPError(status: 502, message: "tunnel has no connected client", kind: .noClient)
    public static let localUnreachable = TunnelHTTPError(
        status: 502, message: "local service refused or reset the connection", kind: .badGateway)
    public static let streamRefused = TunnelHTTPError(
        status: 502, message: "tunnel client cannot take the connection", kind: .badGateway)
    public static let responseTimeout = TunnelHTTPError(
        status: 504, message: "local service sent no response in time", kind: .timeout)

    /// The full response: status line, `Content-Type`, `Content-Length`, `Connection: close`.
    public func response() -> ByteBuffer {
        let body = message + "\n"
        var buffer = ByteBuffer()
        buffer.writeString("HTTP/1.1 \(status) \(Self.reasonPhrase(status))\r\n")
        buffer.writeString("Content-Type: text/plain; charset=utf-8\r\n")
        buffer.writeString("Content-Length: \(body.utf8.count)\r\n")
        buffer.writeString("Connection: close\r\n\r\n")
        buffer.writeString(body)
        return buffer
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 400: return "Bad Request"
        case 404: return "Not Found"
        case 408: return "Request Timeout"
        case 421: return "Misdirected Request"
        case 431: return "Request Header Fields Too Large"
        case 502: return "Bad Gateway"
        case 504: return "Gateway Timeout"
        default: return "Error"
        }
    }
}

/// The `kind` label of `zrc_tunnel_errors_total` (DESIGN §11).
public enum TunnelErrorKind: String, CaseIterable, Sendable {
    case notFound = "not_found"
    case noClient = "no_client"
    case badGateway = "bad_gateway"
    case timeout
    case misdirected
}
