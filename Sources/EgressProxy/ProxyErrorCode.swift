/// A stream-opening refusal code of DESIGN §12, as written in `ERR <code> <text>` and in the
/// agent's `X-Zrc-Proxy-Error` header.
public struct ProxyErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// The code as it appears on the wire.
    public let name: String

    private init(_ name: String) { self.name = name }

    /// The policy refuses the destination (403).
    public static let denied = ProxyErrorCode("denied")
    /// The name did not resolve (502).
    public static let dnsFailed = ProxyErrorCode("dns_failed")
    /// The destination refused or was unreachable (502).
    public static let dialFailed = ProxyErrorCode("dial_failed")
    /// Dialling took longer than the dial timeout (504).
    public static let timeout = ProxyErrorCode("timeout")
    /// The destination's circuit is open (503).
    public static let circuitOpen = ProxyErrorCode("circuit_open")
    /// The agent has `--max-streams` streams open (503).
    public static let busy = ProxyErrorCode("busy")
    /// Agent only: no tunnel to the server right now (503).
    public static let tunnelDown = ProxyErrorCode("tunnel_down")
    /// Agent only: the client's request was not a proxy request we take (400).
    public static let badRequest = ProxyErrorCode("bad_request")
    /// Agent only: the server ended the stream without an answer, or answered something
    /// that is not `OK`/`ERR` (502).
    public static let badAnswer = ProxyErrorCode("bad_answer")

    /// The codes a server may send in `ERR`.
    public static let serverCodes: [ProxyErrorCode] = [.denied, .dnsFailed, .dialFailed, .timeout, .circuitOpen, .busy]

    /// The code named `name` among the server's codes, or `nil`.
    public init?(serverCode name: String) {
        guard let code = Self.serverCodes.first(where: { $0.name == name }) else { return nil }
        self = code
    }

    /// The HTTP status the agent answers the application with (§12).
    public var httpStatus: Int {
        switch self {
        case .denied: return 403
        case .timeout: return 504
        case .circuitOpen, .busy, .tunnelDown: return 503
        case .badRequest: return 400
        default: return 502
        }
    }

    public var description: String { name }
}
