import NIOCore

/// The TCP fallback's wire (DESIGN §9), written once for the relay and its clients: TLS with
/// ALPN `zrc-relay/1`, yamux inside, the client's stream 1 carrying the control frames of §4 and
/// its stream 3 the datagrams, each as `length u16 | payload` (big-endian).
public enum FallbackWire {
    /// The ALPN protocol both ends must agree on.
    public static let alpn = "zrc-relay/1"
    /// The client-opened stream that carries the control frames.
    public static let controlStreamID: UInt32 = 1
    /// The client-opened stream that carries the datagrams.
    public static let datagramStreamID: UInt32 = 3
    /// The largest payload the `u16` length can frame.
    public static let maximumDatagramLength = Int(UInt16.max)

    /// Appends one datagram, framed. Returns `false` (and appends nothing) when the payload is
    /// longer than ``maximumDatagramLength``.
    @discardableResult
    public static func writeDatagram(_ payload: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) -> Bool {
        guard let length = UInt16(exactly: payload.count) else { return false }
        buffer.writeInteger(length)
        buffer.writeBytes(payload)
        return true
    }

    /// One framed datagram as a buffer of its own (`nil` when the payload is too long).
    public static func framedDatagram(_ payload: UnsafeRawBufferPointer) -> ByteBuffer? {
        var buffer = ByteBufferAllocator().buffer(capacity: 2 + payload.count)
        return writeDatagram(payload, into: &buffer) ? buffer : nil
    }

    /// The framed size (`2 + length`) of the complete datagram that starts at `index`, or `nil`
    /// while its bytes have not all arrived.
    public static func framedSize(in buffer: ByteBuffer, at index: Int) -> Int? {
        guard let length = buffer.getInteger(at: index, as: UInt16.self) else { return nil }
        let size = 2 + Int(length)
        return buffer.writerIndex - index >= size ? size : nil
    }
}
