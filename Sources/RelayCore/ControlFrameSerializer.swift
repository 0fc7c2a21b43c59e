/// Encodes control frames. Variable fields longer than their length prefix allows are
/// truncated (addresses to 255 bytes at a character boundary, reasons to fit 4096).
public enum ControlFrameSerializer {
    public static func encode(_ frame: ControlFrame) -> [UInt8] {
        var body: [UInt8] = []
        switch frame {
        case .allocate(let peer, let token):
            body += peer.bytes
            let t = token.prefix(ControlFrameParser.maximumBodyLength - 18)
            body += u16(UInt16(t.count)) + t
        case .refresh(let token):
            let t = token.prefix(ControlFrameParser.maximumBodyLength - 2)
            body += u16(UInt16(t.count)) + t
        case .release:
            break
        case .allocated(let a):
            body += a.allocationID.bytes + u64(a.expiresAt) + u64(a.bandwidthBitsPerSecond) + u64(a.quotaBytes) + u16(a.relayPort)
            let relay = utf8Prefix(a.relayAddress, 255)
            body.append(UInt8(relay.count))
            body += relay
            let observed = utf8Prefix(a.observedAddress, 255)
            body.append(UInt8(observed.count))
            body += observed
        case .peer(let state):
            body.append(state.rawValue)
        case .quota(let used, let quota):
            body += u64(used) + u64(quota)
        case .refreshed(let expires):
            body += u64(expires)
        case .goAway(let g):
            body.append(g.reason.rawValue)
            body += u32(g.reconnectInMilliseconds) + u32(g.tryForMilliseconds)
            let alt = utf8Prefix(g.alternate, 255)
            body.append(UInt8(alt.count))
            body += alt
        case .status(let kind, let dropped):
            body.append(kind.rawValue)
            body += u64(dropped)
        case .error(let code, let reason):
            let r = utf8Prefix(reason, ControlFrameParser.maximumBodyLength - 4)
            body += u16(code.rawValue) + u16(UInt16(r.count)) + r
        }
        return [frame.typeByte] + u16(UInt16(body.count)) + body
    }

    static func u16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(truncatingIfNeeded: v)] }
    static func u32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
    static func u64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }

    /// At most `limit` bytes of UTF-8, cut at a character boundary.
    static func utf8Prefix(_ s: String, _ limit: Int) -> [UInt8] {
        var out: [UInt8] = []
        for c in s {
            let bytes = Array(String(c).utf8)
            if out.count + bytes.count > limit { break }
            out += bytes
        }
        return out
    }
}
