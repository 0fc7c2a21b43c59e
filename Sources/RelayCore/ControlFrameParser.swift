/// Incremental parser of control frames from a stream of bytes.
///
/// `nextFrame()` returns `nil` when it needs more bytes and throws `bad_message` for anything
/// malformed: an unknown type or one not allowed in this direction, a length over 4096, a body
/// whose inner lengths do not add up, invalid UTF-8. The length is checked before the body is
/// waited for, and at most `maximumBufferedBytes` are ever held.
public struct ControlFrameParser: Sendable {
    /// Which side's frames this parser accepts.
    public enum Direction: Sendable {
        /// The relay parsing what a client sends: ALLOCATE, REFRESH, RELEASE.
        case fromClient
        /// A client parsing what the relay sends.
        case fromRelay
    }

    public static let maximumBodyLength = 4096
    public let direction: Direction
    public let maximumBufferedBytes: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0

    public init(direction: Direction, maximumBufferedBytes: Int = 64 * 1024) {
        self.direction = direction
        self.maximumBufferedBytes = max(maximumBufferedBytes, 3 + Self.maximumBodyLength)
    }

    /// Bytes waiting to be parsed.
    public var bufferedCount: Int { buffer.count - readIndex }

    /// Adds bytes from the stream. Throws if the peer sends far more than it lets us parse.
    public mutating func append(_ bytes: some Collection<UInt8>) throws(RelayError) {
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        guard bufferedCount + bytes.count <= maximumBufferedBytes else {
            throw .badMessage("more than \(maximumBufferedBytes) unparsed control bytes")
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, or `nil` if more bytes are needed.
    public mutating func nextFrame() throws(RelayError) -> ControlFrame? {
        guard bufferedCount >= 3 else { return nil }
        let type = buffer[readIndex]
        guard isAllowed(type) else {
            throw .badMessage("frame type 0x\(String(type, radix: 16)) is not accepted \(direction == .fromClient ? "from a client" : "from the relay")")
        }
        let length = Int(buffer[readIndex + 1]) << 8 | Int(buffer[readIndex + 2])
        guard length <= Self.maximumBodyLength else { throw .badMessage("frame body of \(length) bytes exceeds 4096") }
        guard bufferedCount >= 3 + length else { return nil }
        let body = buffer[(readIndex + 3)..<(readIndex + 3 + length)]
        let frame = try Self.decode(type: type, body: body)
        readIndex += 3 + length
        return frame
    }

    private func isAllowed(_ type: UInt8) -> Bool {
        switch direction {
        case .fromClient: return (0x01...0x03).contains(type)
        case .fromRelay: return (0x81...0x86).contains(type) || type == 0xFF
        }
    }

    static func decode(type: UInt8, body: ArraySlice<UInt8>) throws(RelayError) -> ControlFrame {
        var r = BodyReader(body)
        let frame: ControlFrame
        switch type {
        case 0x01:
            guard let peer = r.bytes(16).flatMap(PeerID.init(bytes:)), let tokenLength = r.u16(),
                  let token = r.bytes(Int(tokenLength)) else { throw .badMessage("ALLOCATE body is malformed") }
            frame = .allocate(peerID: peer, token: Array(token))
        case 0x02:
            guard let tokenLength = r.u16(), let token = r.bytes(Int(tokenLength)) else {
                throw .badMessage("REFRESH body is malformed")
            }
            frame = .refresh(token: Array(token))
        case 0x03:
            frame = .release
        case 0x81:
            guard let id = r.bytes(16).flatMap(AllocationID.init(bytes:)), let expires = r.u64(), let rate = r.u64(),
                  let quota = r.u64(), let port = r.u16(), let relayLength = r.u8(), let relay = r.string(Int(relayLength)),
                  let observedLength = r.u8(), let observed = r.string(Int(observedLength))
            else { throw .badMessage("ALLOCATED body is malformed") }
            frame = .allocated(.init(allocationID: id, expiresAt: expires, bandwidthBitsPerSecond: rate, quotaBytes: quota,
                                     relayPort: port, relayAddress: relay, observedAddress: observed))
        case 0x82:
            guard let raw = r.u8(), let state = PeerState(rawValue: raw) else { throw .badMessage("PEER state is unknown") }
            frame = .peer(state)
        case 0x83:
            guard let used = r.u64(), let quota = r.u64() else { throw .badMessage("QUOTA body is malformed") }
            frame = .quota(used: used, quota: quota)
        case 0x84:
            guard let expires = r.u64() else { throw .badMessage("REFRESHED body is malformed") }
            frame = .refreshed(expiresAt: expires)
        case 0x85:
            guard let raw = r.u8(), let reason = GoAwayReason(rawValue: raw), let reconnect = r.u32(), let tryFor = r.u32(),
                  let altLength = r.u8(), let alt = r.string(Int(altLength))
            else { throw .badMessage("GOAWAY body is malformed") }
            frame = .goAway(.init(reason: reason, reconnectInMilliseconds: reconnect, tryForMilliseconds: tryFor, alternate: alt))
        case 0x86:
            guard let raw = r.u8(), let kind = StatusKind(rawValue: raw), let dropped = r.u64() else {
                throw .badMessage("STATUS body is malformed")
            }
            frame = .status(kind: kind, dropped: dropped)
        case 0xFF:
            guard let code = r.u16(), let reasonLength = r.u16(), let reason = r.string(Int(reasonLength)) else {
                throw .badMessage("ERROR body is malformed")
            }
            frame = .error(code: RelayErrorCode(rawValue: code), reason: reason)
        default:
            throw .badMessage("frame type 0x\(String(type, radix: 16)) is unknown")
        }
        guard r.isAtEnd else { throw .badMessage("frame 0x\(String(type, radix: 16)) has \(r.remaining) trailing bytes") }
        return frame
    }
}

/// Bounds-checked big-endian reads from a frame body; every read returns `nil` past the end.
struct BodyReader {
    private let bytes: ArraySlice<UInt8>
    private var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    var remaining: Int { bytes.endIndex - index }
    var isAtEnd: Bool { index == bytes.endIndex }

    mutating func bytes(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, remaining >= count else { return nil }
        defer { index += count }
        return bytes[index..<(index + count)]
    }

    mutating func u8() -> UInt8? { bytes(1).map { $0[$0.startIndex] } }

    mutating func u16() -> UInt16? { bytes(2).map { $0.reduce(0) { $0 << 8 | UInt16($1) } } }

    mutating func u32() -> UInt32? { bytes(4).map { $0.reduce(0) { $0 << 8 | UInt32($1) } } }

    mutating func u64() -> UInt64? { bytes(8).map { $0.reduce(0) { $0 << 8 | UInt64($1) } } }

    mutating func string(_ count: Int) -> String? {
        guard let raw = bytes(count) else { return nil }
        return String(validating: raw, as: UTF8.self)
    }
}
