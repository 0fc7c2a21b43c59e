import NIOCore

/// One yamux frame: a header and, for Data frames, the payload that follows it.
///
/// For Data frames `header.length` equals `payload.readableBytes`; for the other types
/// the payload is empty.
public struct YamuxFrame: Hashable, Sendable, CustomStringConvertible {
    /// The frame header.
    public var header: YamuxFrameHeader
    /// The payload of a Data frame; empty for the other frame types.
    public var payload: ByteBuffer

    /// Creates a frame from a parsed header and its payload. Internal: the parser and the
    /// factories below keep `header.length` and the payload consistent.
    init(header: YamuxFrameHeader, payload: ByteBuffer) {
        self.header = header
        self.payload = payload
    }

    /// A Data frame carrying `payload`.
    /// - Parameters:
    ///   - streamID: The stream.
    ///   - flags: Flags to send with the data.
    ///   - payload: The bytes; at most 2^32-1 of them.
    public static func data(streamID: UInt32, flags: YamuxFrameFlags = [], payload: ByteBuffer) -> YamuxFrame {
        // Our own invariant: callers split data to the send window, which is a UInt32.
        precondition(payload.readableBytes <= Int(UInt32.max), "yamux data frame payload too large")
        let header = YamuxFrameHeader(
            type: .data, flags: flags, streamID: streamID, length: UInt32(truncatingIfNeeded: payload.readableBytes))
        return YamuxFrame(header: header, payload: payload)
    }

    /// A WindowUpdate frame (also used to carry SYN/ACK/FIN/RST without data).
    /// - Parameters:
    ///   - streamID: The stream.
    ///   - flags: Flags.
    ///   - delta: The send-window increment granted to the peer.
    public static func windowUpdate(streamID: UInt32, flags: YamuxFrameFlags = [], delta: UInt32 = 0) -> YamuxFrame {
        YamuxFrame(
            header: YamuxFrameHeader(type: .windowUpdate, flags: flags, streamID: streamID, length: delta),
            payload: ByteBuffer())
    }

    /// A Ping frame on stream 0.
    /// - Parameters:
    ///   - flags: `.syn` for a request, `.ack` for a response.
    ///   - opaque: The value the response echoes.
    public static func ping(flags: YamuxFrameFlags, opaque: UInt32) -> YamuxFrame {
        YamuxFrame(
            header: YamuxFrameHeader(type: .ping, flags: flags, streamID: 0, length: opaque),
            payload: ByteBuffer())
    }

    /// A GoAway frame on stream 0.
    /// - Parameter code: Why the session ends.
    public static func goAway(_ code: YamuxGoAwayCode) -> YamuxFrame {
        YamuxFrame(
            header: YamuxFrameHeader(type: .goAway, flags: [], streamID: 0, length: code.networkCode),
            payload: ByteBuffer())
    }

    public var description: String {
        "YamuxFrame\(self.header)"
    }
}
