/// The outcome of handling one inbound frame, carrying the scope of any error
/// (STYLE §3.2): a stream error is answered with RST on that stream, a session error with
/// GoAway and the end of the session.
enum YamuxStateMachineResult: Hashable, Sendable {
    /// Handled; any actions were queued.
    case ok
    /// The stream broke the protocol: reset it, the session goes on.
    case streamError(streamID: UInt32, YamuxError)
    /// The session broke the protocol: send GoAway with `code` and end the session.
    case sessionError(YamuxGoAwayCode, YamuxError)
}
