/// Which end of the underlying connection a session is; it fixes the parity of the stream
/// ids the session opens.
public enum YamuxRole: Hashable, Sendable {
    /// The connecting side: opens odd stream ids, starting at 1.
    case client
    /// The accepting side: opens even stream ids, starting at 2.
    case server

    /// The first stream id this role opens.
    var firstStreamID: UInt32 {
        switch self {
        case .client: return 1
        case .server: return 2
        }
    }

    /// Whether `streamID` has this role's parity (would be opened by this role).
    func opens(_ streamID: UInt32) -> Bool {
        switch self {
        case .client: return streamID % 2 == 1
        case .server: return streamID != 0 && streamID % 2 == 0
        }
    }
}
