/// An IPv4 or IPv6 address as bytes, parsed without the C library (so odd inet_aton forms
/// such as `127.1` or `0x7f.0.0.1` are *not* addresses here: they are treated as names, and
/// whatever they resolve to is checked like any other answer).
public enum ProxyIPAddress: Hashable, Sendable, CustomStringConvertible {
    /// An IPv4 address, host byte order.
    case v4(UInt32)
    /// An IPv6 address: 16 bytes, network order.
    case v6([UInt8])

    /// Parses a dotted-quad IPv4 or an RFC 4291 IPv6 literal (no brackets, no zone).
    public init?(_ text: some StringProtocol) {
        if let v4 = Self.parseV4(Array(text.utf8)) {
            self = .v4(v4)
        } else if let v6 = Self.parseV6(Array(text.utf8)) {
            self = .v6(v6)
        } else {
            return nil
        }
    }

    /// Builds an address from 4 or 16 raw bytes.
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4: self = .v4(bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        case 16: self = .v6(bytes)
        default: return nil
        }
    }

    /// The address bytes (4 or 16).
    public var bytes: [UInt8] {
        switch self {
        case .v4(let value): return [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
        case .v6(let bytes): return bytes
        }
    }

    public var description: String {
        switch self {
        case .v4:
            return bytes.map(String.init).joined(separator: ".")
        case .v6(let bytes):
            var groups: [UInt16] = []
            for i in stride(from: 0, to: 16, by: 2) { groups.append(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])) }
            // The longest run of two or more zero groups becomes "::".
            var bestStart = -1, bestLength = 0, i = 0
            while i < 8 {
                if groups[i] == 0 {
                    var j = i
                    while j < 8, groups[j] == 0 { j += 1 }
                    if j - i > bestLength, j - i >= 2 { bestStart = i; bestLength = j - i }
                    i = j
                } else {
                    i += 1
                }
            }
            func hex(_ range: Range<Int>) -> String { groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
            if bestStart < 0 { return hex(0..<8) }
            return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
        }
    }

    static func parseV4(_ text: [UInt8]) -> UInt32? {
        let parts = text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            if part.count > 1, part.first == 0x30 { return nil }  // no leading zeros (octal ambiguity)
            let octet = part.reduce(0) { $0 * 10 + Int($1 - 0x30) }
            guard octet <= 255 else { return nil }
            value = value << 8 | UInt32(octet)
        }
        return value
    }

    static func parseV6(_ text: [UInt8]) -> [UInt8]? {
        guard text.count >= 2, text.count <= 45 else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawDoubleColon = false
        var rest = text[...]
        if rest.starts(with: [0x3a, 0x3a]) {
            sawDoubleColon = true
            rest = rest.dropFirst(2)
        } else if rest.first == 0x3a {
            return nil
        }
        var groupsDone = false
        while !rest.isEmpty {
            guard !groupsDone else { return nil }
            let end = rest.firstIndex(of: 0x3a) ?? rest.endIndex
            let piece = rest[rest.startIndex..<end]
            if piece.contains(0x2e) {
                // An embedded IPv4 address ends the literal.
                guard end == rest.endIndex, let v4 = parseV4(Array(piece)) else { return nil }
                let hi = UInt16(v4 >> 16), lo = UInt16(v4 & 0xffff)
                if sawDoubleColon { tail += [hi, lo] } else { head += [hi, lo] }
                groupsDone = true
                rest = rest[end...]
                continue
            }
            guard !piece.isEmpty, piece.count <= 4 else { return nil }
            var group: UInt16 = 0
            for c in piece {
                let digit: UInt16
                switch c {
                case 0x30...0x39: digit = UInt16(c - 0x30)
                case 0x61...0x66: digit = UInt16(c - 0x61 + 10)
                case 0x41...0x46: digit = UInt16(c - 0x41 + 10)
                default: return nil
                }
                group = group << 4 | digit
            }
            if sawDoubleColon { tail.append(group) } else { head.append(group) }
            rest = rest[end...]
            if rest.starts(with: [0x3a, 0x3a]) {
                guard !sawDoubleColon else { return nil }
                sawDoubleColon = true
                rest = rest.dropFirst(2)
            } else if rest.first == 0x3a {
                rest = rest.dropFirst()
                guard !rest.isEmpty else { return nil }  // a trailing single colon
            }
        }
        let count = head.count + tail.count
        if sawDoubleColon {
            guard count <= 7 else { return nil }
        } else {
            guard count == 8 else { return nil }
        }
        let groups = head + Array(repeating: 0, count: 8 - count) + tail
        return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }
}

extension ProxyIPAddress {
    /// Why an address is refused unless `--allow-private`; `nil` for an ordinary public
    /// address. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4) are
    /// judged by that address.
    public var specialClass: String? {
        switch self {
        case .v4(let value): return Self.specialClassV4(value)
        case .v6(let b): return Self.specialClassV6(b)
        }
    }

    static func specialClassV4(_ a: UInt32) -> String? {
        func inNet(_ net: UInt32, _ bits: Int) -> Bool {
            let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << UInt32(32 - bits)
            return a & mask == net & mask
        }
        if inNet(0x0000_0000, 8) { return "unspecified" }  // 0.0.0.0/8 "this network"
        if inNet(0x7f00_0000, 8) { return "loopback" }
        if inNet(0x0a00_0000, 8) || inNet(0xac10_0000, 12) || inNet(0xc0a8_0000, 16) { return "private" }
        if inNet(0xa9fe_0000, 16) { return "link-local" }  // 169.254/16: cloud metadata included
        if inNet(0x6440_0000, 10) { return "cgnat" }
        if inNet(0xe000_0000, 4) { return "multicast" }
        if inNet(0xf000_0000, 4) { return "reserved" }  // 240/4 and 255.255.255.255
        if inNet(0xc000_0000, 24) { return "special" }  // 192.0.0/24 protocol assignments
        if inNet(0xc000_0200, 24) || inNet(0xc633_6400, 24) || inNet(0xcb00_7100, 24) { return "documentation" }
        if inNet(0xc612_0000, 15) { return "benchmarking" }  // 198.18/15
        if inNet(0xc058_6300, 24) { return "special" }  // 192.88.99/24 6to4 relay anycast
        return nil
    }

    static func specialClassV6(_ b: [UInt8]) -> String? {
        guard b.count == 16 else { return "invalid" }
        func prefix(_ p: [UInt8], bits: Int) -> Bool {
            for i in 0..<bits {
                let byte = i / 8, bit = 7 - i % 8
                if (b[byte] >> bit) & 1 != (p[byte] >> bit) & 1 { return false }
            }
            return true
        }
        func v4(_ at: Int) -> UInt32 {
            UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
        }
        let zero = [UInt8](repeating: 0, count: 16)
        if b == zero { return "unspecified" }
        if b == zero.dropLast() + [1] { return "loopback" }
        // ::ffff:0:0/96 (mapped) and ::/96 (compatible): judged by the IPv4 address.
        if b[0..<10].allSatisfy({ $0 == 0 }) && ((b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0)) {
            return specialClassV4(v4(12)).map { "ipv4-embedded " + $0 } ?? (b[10] == 0 ? "ipv4-compatible" : nil)
        }
        // ::ffff:0:0:0/96 (SIIT translated)
        if b[0..<8].allSatisfy({ $0 == 0 }) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0 {
            return specialClassV4(v4(12)).map { "ipv4-embedded " + $0 }
        }
        // 64:ff9b::/96 NAT64: judged by the IPv4 address; 64:ff9b:1::/48 local-use NAT64.
        if prefix([0, 0x64, 0xff, 0x9b] + [UInt8](repeating: 0, count: 12), bits: 96) {
            return specialClassV4(v4(12)).map { "ipv4-embedded " + $0 }
        }
        if prefix([0, 0x64, 0xff, 0x9b, 0, 1] + [UInt8](repeating: 0, count: 10), bits: 48) { return "nat64-local" }
        // 2002::/16 6to4: the IPv4 address sits in bytes 2...5.
        if b[0] == 0x20 && b[1] == 0x02 {
            return specialClassV4(v4(2)).map { "ipv4-embedded " + $0 }
        }
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0 { return "teredo" }  // 2001::/32 hides an IPv4 address
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8 { return "documentation" }  // 2001:db8::/32
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] < 0x02 { return "special" }  // 2001::/23 IETF assignments
        if b[0] == 0x01 && b[1] == 0 && b[2..<8].allSatisfy({ $0 == 0 }) { return "discard" }  // 100::/64
        if b[0] & 0xfe == 0xfc { return "unique-local" }  // fc00::/7
        if b[0] == 0xfe && b[1] & 0xc0 == 0x80 { return "link-local" }  // fe80::/10
        if b[0] == 0xfe && b[1] & 0xc0 == 0xc0 { return "site-local" }  // fec0::/10 (deprecated)
        if b[0] == 0xff { return "multicast" }
        return nil
    }

    /// Whether the address lies in `network/bits`. An IPv4 address and its IPv4-mapped IPv6
    /// form are the same address: `10.0.0.0/8` holds `::ffff:10.0.0.1`, and
    /// `::ffff:10.0.0.0/104` holds `10.0.0.1`. Other IPv6 addresses are never in an IPv4
    /// network.
    public func isIn(_ network: ProxyIPAddress, bits: Int) -> Bool {
        let mine: [UInt8], theirs: [UInt8]
        switch (self, network) {
        case (.v4, .v4):
            (mine, theirs) = (bytes, network.bytes)
        case (.v6, .v4):
            guard case .v4 = unmapped else { return false }
            (mine, theirs) = (unmapped.bytes, network.bytes)
        case (.v4, .v6):
            (mine, theirs) = ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + bytes, network.bytes)
        case (.v6, .v6):
            (mine, theirs) = (bytes, network.bytes)
        }
        guard mine.count == theirs.count, bits >= 0, bits <= mine.count * 8 else { return false }
        for i in 0..<bits {
            let byte = i / 8, bit = 7 - i % 8
            if (mine[byte] >> bit) & 1 != (theirs[byte] >> bit) & 1 { return false }
        }
        return true
    }

    /// An IPv4-mapped IPv6 address as IPv4; any other address unchanged.
    public var unmapped: ProxyIPAddress {
        if case .v6(let b) = self, b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xff, b[11] == 0xff {
            return .v4(UInt32(b[12]) << 24 | UInt32(b[13]) << 16 | UInt32(b[14]) << 8 | UInt32(b[15]))
        }
        return self
    }
}
