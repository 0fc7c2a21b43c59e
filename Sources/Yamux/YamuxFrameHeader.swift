/// The 12-byte header that starts every yamux frame (hashicorp/yamux `spec.md`, "Framing").
///
/// On the wire: version (u8, always 0), type (u8), flags (u16), stream id (u32) and
/// length (u32), all big-endian. The meaning of ``length`` depends on ``type``: the
/// payload size for Data, a window delta for WindowUpdate, an opaque value for Ping and an
/// error code for GoAway.
public struct YamuxFrameHeader: Hashable, Sendable, CustomStringConvertible {
    /// The only protocol version yamux defines.
    public static let protocolVersion: UInt8 = 0

    /// The size of an encoded header in bytes.
    public static let encodedLength = 12

    /// The frame type.
    public var type: YamuxFrameType
    /// The flags (SYN, ACK, FIN, RST).
    public var flags: YamuxFrameFlags
    /// The stream the frame addresses; 0 for the session (Ping, GoAway).
    public var streamID: UInt32
    /// Payload length, window delta, ping opaque value or GoAway code, by ``type``.
    public var length: UInt32

    /// Creates a header.
    /// - Parameters:
    ///   - type: The frame type.
    ///   - flags: The flags.
    ///   - streamID: The stream id, 0 for session frames.
    ///   - length: The length field, interpreted according to `type`.
    public init(type: YamuxFrameType, flags: YamuxFrameFlags, streamID: UInt32, length: UInt32) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.length = length
    }

    public var description: String {
        "[\(self.type) flags=\(self.flags) stream=\(self.streamID) length=\(self.length)]"
    }
}
