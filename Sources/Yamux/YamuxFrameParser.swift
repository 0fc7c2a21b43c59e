import NIOCore

/// Splits a byte stream into yamux frames.
///
/// Append bytes as they arrive with ``append(_:)`` and call ``nextFrame()`` until it
/// returns `nil` (more bytes needed). A Data frame whose length is above
/// ``maximumDataLength`` is rejected as soon as its header is readable, before its payload
/// is buffered; a bad version or type is rejected likewise. After an error the parser's
/// input is not meaningful any more: the session must end.
public struct YamuxFrameParser: Sendable {
    private var buffer: ByteBuffer

    /// The largest Data payload accepted. A session sets it to its receive window, which
    /// bounds every legal Data frame.
    public let maximumDataLength: UInt32

    /// Creates a parser.
    /// - Parameter maximumDataLength: The largest Data payload accepted.
    public init(maximumDataLength: UInt32) {
        self.buffer = ByteBuffer()
        self.maximumDataLength = maximumDataLength
    }

    /// The number of bytes received but not yet returned as frames.
    public var bufferedBytes: Int {
        self.buffer.readableBytes
    }

    /// Adds received bytes.
    /// - Parameter bytes: Bytes from the connection, in order.
    public mutating func append(_ bytes: ByteBuffer) {
        if self.buffer.readableBytes == 0 {
            // Take the buffer as is: frames are then sliced from it without a copy.
            self.buffer = bytes
        } else {
            self.buffer.writeImmutableBuffer(bytes)
        }
    }

    /// Returns the next complete frame, or `nil` when more bytes are needed.
    ///
    /// - Throws: ``YamuxError`` with code `.invalidVersion`, `.invalidFrameType` or
    ///   `.frameTooLarge`.
    public mutating func nextFrame() throws(YamuxError) -> YamuxFrame? {
        let start = self.buffer.readerIndex
        guard let header = try self.buffer.readYamuxHeader() else {
            return nil
        }
        guard header.type == .data else {
            self.compactIfUseful()
            return YamuxFrame(header: header, payload: ByteBuffer())
        }
        guard header.length <= self.maximumDataLength else {
            self.buffer.moveReaderIndex(to: start)
            throw .frameTooLarge(length: header.length, limit: self.maximumDataLength)
        }
        guard let length = Int(exactly: header.length), let payload = self.buffer.readSlice(length: length) else {
            self.buffer.moveReaderIndex(to: start)
            return nil
        }
        self.compactIfUseful()
        return YamuxFrame(header: header, payload: payload)
    }

    /// Drops consumed bytes once they dominate the buffer. An empty buffer is left alone:
    /// the next ``append(_:)`` replaces it without a copy.
    private mutating func compactIfUseful() {
        let readable = self.buffer.readableBytes
        if readable > 0 && self.buffer.readerIndex > 65_536 && self.buffer.readerIndex > readable {
            self.buffer.discardReadBytes()
        }
    }
}
