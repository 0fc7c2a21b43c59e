import NIOCore

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
