/// The flags field of a yamux frame header.
public struct YamuxFrameFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16

    /// Creates flags from their wire value; unknown bits are kept as they are.
    /// - Parameter rawValue: The 16-bit flags field.
    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// Opens a stream (Data/WindowUpdate) or marks a ping request.
    public static let syn = YamuxFrameFlags(rawValue: 0x1)
    /// Accepts a stream (Data/WindowUpdate) or marks a ping response.
    public static let ack = YamuxFrameFlags(rawValue: 0x2)
    /// Half-closes the stream: the sender sends no more data.
    public static let fin = YamuxFrameFlags(rawValue: 0x4)
    /// Resets the stream at once.
    public static let rst = YamuxFrameFlags(rawValue: 0x8)

    public var description: String {
        var names: [String] = []
        if self.contains(.syn) { names.append("SYN") }
        if self.contains(.ack) { names.append("ACK") }
        if self.contains(.fin) { names.append("FIN") }
        if self.contains(.rst) { names.append("RST") }
        let unknown = self.rawValue & ~UInt16(0xF)
        if unknown != 0 { names.append("0x\(String(unknown, radix: 16))") }
        return names.isEmpty ? "-" : names.joined(separator: "|")
    }
}
