/// The error code carried in the length field of a GoAway frame.
///
/// hashicorp/yamux defines 0 (normal), 1 (protocol error) and 2 (internal error); any other
/// value received is kept as is and treated as an error termination.
public struct YamuxGoAwayCode: Hashable, Sendable, CustomStringConvertible {
    /// The value on the wire.
    public var networkCode: UInt32

    /// Wraps a wire value.
    /// - Parameter networkCode: The GoAway length field.
    public init(networkCode: UInt32) {
        self.networkCode = networkCode
    }

    /// Normal termination: the sender opens and accepts no new streams; open ones may finish.
    public static let normal = YamuxGoAwayCode(networkCode: 0)
    /// The peer broke the protocol.
    public static let protocolError = YamuxGoAwayCode(networkCode: 1)
    /// The sender failed internally.
    public static let internalError = YamuxGoAwayCode(networkCode: 2)

    public var description: String {
        switch self.networkCode {
        case 0: return "normal"
        case 1: return "protocolError"
        case 2: return "internalError"
        default: return "unknown(\(self.networkCode))"
        }
    }
}
