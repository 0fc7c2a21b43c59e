/// The type field of a yamux frame header.
public enum YamuxFrameType: UInt8, Hashable, Sendable, CustomStringConvertible {
    /// Stream data; `length` bytes of payload follow the header.
    case data = 0
    /// A send-window increment for a stream; `length` is the delta.
    case windowUpdate = 1
    /// Keepalive and RTT probe; `length` is an opaque value echoed back.
    case ping = 2
    /// Session termination; `length` is a ``YamuxGoAwayCode``.
    case goAway = 3

    public var description: String {
        switch self {
        case .data: return "Data"
        case .windowUpdate: return "WindowUpdate"
        case .ping: return "Ping"
        case .goAway: return "GoAway"
        }
    }
}
