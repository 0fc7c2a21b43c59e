/// Why a session ended (see ``YamuxSessionAction/sessionClosed(_:)``).
public enum YamuxSessionCloseReason: Hashable, Sendable {
    /// The application ended it; a GoAway with this code was queued.
    case local(YamuxGoAwayCode)
    /// The peer sent GoAway with an error code.
    case remote(YamuxGoAwayCode)
    /// We detected a protocol violation (GoAway protocol error queued) or the keepalive
    /// ping went unanswered (GoAway internal error queued).
    case error(YamuxError)
    /// The transport closed under the session (``YamuxSession/transportClosed()``).
    case transportClosed
}
