import NIOCore

extension ByteBuffer {
    /// Reads a 12-byte yamux frame header.
    ///
    /// Returns `nil`, leaving the reader index where it was, when fewer than 12 bytes are
    /// readable. Throws, also leaving the reader index unchanged, when the version is not 0
    /// or the type is unknown.
    public mutating func readYamuxHeader() throws(YamuxError) -> YamuxFrameHeader? {
        guard
            let (version, rawType, rawFlags, streamID, length) = self.getMultipleIntegers(
                at: self.readerIndex, as: (UInt8, UInt8, UInt16, UInt32, UInt32).self)
        else {
            return nil
        }
        guard version == YamuxFrameHeader.protocolVersion else {
            throw .invalidVersion(version)
        }
        guard let type = YamuxFrameType(rawValue: rawType) else {
            throw .invalidFrameType(rawType)
        }
        self.moveReaderIndex(forwardBy: YamuxFrameHeader.encodedLength)
        return YamuxFrameHeader(
            type: type, flags: YamuxFrameFlags(rawValue: rawFlags), streamID: streamID, length: length)
    }

    /// Writes a 12-byte yamux frame header (version 0).
    /// - Parameter header: The header to encode.
    /// - Returns: The number of bytes written (12).
    @discardableResult
    public mutating func writeYamuxHeader(_ header: YamuxFrameHeader) -> Int {
        self.writeMultipleIntegers(
            YamuxFrameHeader.protocolVersion, header.type.rawValue, header.flags.rawValue, header.streamID,
            header.length)
    }

    /// Writes a whole frame: its header followed by its payload.
    /// - Parameter frame: The frame to encode.
    /// - Returns: The number of bytes written.
    @discardableResult
    public mutating func writeYamuxFrame(_ frame: YamuxFrame) -> Int {
        let headerBytes = self.writeYamuxHeader(frame.header)
        return headerBytes + self.writeImmutableBuffer(frame.payload)
    }
}
