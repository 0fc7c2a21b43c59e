/// The agent's answer to the application when it cannot proxy a request.
public enum ProxyErrorResponse {
    /// A complete `HTTP/1.1` response with `X-Zrc-Proxy-Error: <code>` and `Connection: close`.
    public static func bytes(_ code: ProxyErrorCode, detail: String) -> [UInt8] {
        let status = code.httpStatus
        let cleaned = String(String.UnicodeScalarView(detail.unicodeScalars.filter { $0 != "\r" && $0 != "\n" }))
        let body = "\(code.name): \(cleaned)\n"
        let head = "HTTP/1.1 \(status) \(reasonPhrase(status))\r\n"
            + "X-Zrc-Proxy-Error: \(code.name)\r\n"
            + "Content-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n\r\n"
        return Array((head + body).utf8)
    }

    /// The answer to a `CONNECT` once the server said `OK`.
    public static let connectEstablished = Array("HTTP/1.1 200 Connection Established\r\n\r\n".utf8)

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 400: return "Bad Request"
        case 403: return "Forbidden"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "Error"
        }
    }
}
