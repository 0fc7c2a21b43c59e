/// Why a stream was reset (see ``YamuxSessionAction/streamReset(streamID:reason:)``).
public enum YamuxStreamResetReason: Hashable, Sendable {
    /// The peer sent RST.
    case remote
    /// The application called ``YamuxSession/reset(streamID:)``.
    case local
    /// The peer broke the protocol on this stream; we sent RST.
    case streamError(YamuxError)
    /// The session ended with the stream still open.
    case sessionClosed
}
