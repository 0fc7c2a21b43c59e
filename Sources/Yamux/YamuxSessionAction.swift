import NIOCore

/// Something the owner of a ``YamuxSession`` must do, drained with
/// ``YamuxSession/nextAction()`` after every call into the session.
///
/// Every stream announced by ``streamOpened(streamID:)`` or created by
/// ``YamuxSession/openStream()`` ends with exactly one ``streamClosed(streamID:)`` or
/// ``streamReset(streamID:reason:)``.
public enum YamuxSessionAction: Hashable, Sendable {
    /// Write this frame to the connection, in order.
    case writeFrame(YamuxFrame)
    /// The peer opened a stream: accept it with ``YamuxSession/acceptStream(_:)`` (or
    /// reject it with ``YamuxSession/reset(streamID:)``).
    case streamOpened(streamID: UInt32)
    /// Data for the application. Report it with ``YamuxSession/consumed(streamID:count:)``
    /// once read, so the peer's window reopens.
    case streamData(streamID: UInt32, ByteBuffer)
    /// The peer sent FIN: no more data will arrive on the stream (end of file).
    case streamHalfClosed(streamID: UInt32)
    /// Both sides sent FIN; the stream is gone.
    case streamClosed(streamID: UInt32)
    /// The stream was reset; it is gone.
    case streamReset(streamID: UInt32, reason: YamuxStreamResetReason)
    /// A write was cut short by the send window and the window has reopened.
    case windowOpened(streamID: UInt32)
    /// One of our pings was answered after `rtt`.
    case pingRTT(opaque: UInt32, rtt: Duration)
    /// One of the application's pings was not answered in time.
    case pingTimedOut(opaque: UInt32)
    /// The peer sent GoAway(normal): it accepts no new streams; open streams go on.
    case goAwayReceived(YamuxGoAwayCode)
    /// The session is over: write the frames queued before this action, then close the
    /// connection.
    case sessionClosed(YamuxSessionCloseReason)
}
