/// A set of IPv4/IPv6 prefixes (`10.0.0.0/8`, `2001:db8::/32`, or a bare address) for
/// allow and block lists. Addresses are raw bytes (4 or 16); IPv4-mapped IPv6 addresses match
/// IPv4 prefixes.
public struct CIDRSet: Sendable, Hashable {
    struct Prefix: Sendable, Hashable {
        let bytes: [UInt8]
        let length: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var remaining = length
            for i in 0..<bytes.count where remaining > 0 {
                let bits = min(8, remaining)
                let mask: UInt8 = bits == 8 ? 0xFF : ~(0xFF >> UInt8(bits))
                if address[i] & mask != bytes[i] & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    private(set) var prefixes: [Prefix] = []
    /// The entries as given, for display and admin listing.
    public private(set) var entries: [String] = []

    public init() {}

    /// Parses every entry; throws a message naming the first bad one.
    public init(parsing list: [String]) throws(CIDRError) {
        for entry in list { try insert(entry) }
    }

    public var isEmpty: Bool { prefixes.isEmpty }

    /// Adds one `address/length` or bare address.
    public mutating func insert(_ text: String) throws(CIDRError) {
        let trimmed = text.trimmingWhitespace
        let parts = trimmed.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let bytes = IPAddressParser.parse(String(parts[0])) else {
            throw CIDRError(entry: text, problem: "not an IP address or CIDR")
        }
        var length = bytes.count * 8
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 0, n <= bytes.count * 8 else {
                throw CIDRError(entry: text, problem: "prefix length must be 0–\(bytes.count * 8)")
            }
            length = n
        }
        let prefix = Prefix(bytes: bytes, length: length)
        guard !prefixes.contains(prefix) else { return }
        prefixes.append(prefix)
        entries.append(trimmed)
    }

    /// Removes an entry given exactly as inserted; returns whether it was there.
    @discardableResult
    public mutating func remove(_ text: String) -> Bool {
        guard let index = entries.firstIndex(of: text.trimmingWhitespace) else { return false }
        entries.remove(at: index)
        prefixes.remove(at: index)
        return true
    }

    /// Whether `address` (4 or 16 bytes) falls in any prefix.
    public func contains(_ address: [UInt8]) -> Bool {
        if prefixes.contains(where: { $0.contains(address) }) { return true }
        if address.count == 16, address[0..<10].allSatisfy({ $0 == 0 }), address[10] == 0xFF, address[11] == 0xFF {
            let v4 = Array(address[12..<16])
            return prefixes.contains { $0.contains(v4) }
        }
        return false
    }
}

/// A bad CIDR entry.
public struct CIDRError: Error, Hashable, CustomStringConvertible {
    public let entry: String
    public let problem: String
    public var description: String {
        // Cut and escaped: an entry comes from a file and is echoed in one log or error line.
        let shown = entry.unicodeScalars.prefix(40).map { $0.value < 0x20 || $0.value == 0x7F ? "?" : String($0) }.joined()
        return "'\(shown)\(entry.unicodeScalars.count > 40 ? "…" : "")': \(problem)"
    }
}

/// Numeric IPv4 / IPv6 text to bytes, without sockets.
public enum IPAddressParser {
    public static func parse(_ text: String) -> [UInt8]? {
        if let v4 = parseV4(Substring(text)) { return v4 }
        return parseV6(text)
    }

    static func parseV4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCII), let n = UInt8(p), !(p.count > 1 && p.hasPrefix("0")) else { return nil }
            out.append(n)
        }
        return out
    }

    static func parseV6(_ text: String) -> [UInt8]? {
        var t = Substring(text)
        if t.hasPrefix("["), t.hasSuffix("]") { t = t.dropFirst().dropLast() }
        guard t.contains(":") else { return nil }
        if t == "::" { return [UInt8](repeating: 0, count: 16) }
        let halves = t.split(separator: ":", maxSplits: .max, omittingEmptySubsequences: false)
        // Find "::".
        var head: [Substring] = [], tail: [Substring] = []
        var sawGap = false
        var i = 0
        let pieces = Array(halves)
        while i < pieces.count {
            let p = pieces[i]
            if p.isEmpty {
                // Leading "::", trailing "::" or the middle gap.
                if i + 1 < pieces.count, pieces[i + 1].isEmpty {
                    guard !sawGap else { return nil }
                    sawGap = true
                    i += 2
                    continue
                }
                if i == 0 || i == pieces.count - 1 { return nil }
                guard !sawGap else { return nil }
                sawGap = true
                i += 1
                continue
            }
            if sawGap { tail.append(p) } else { head.append(p) }
            i += 1
        }
        func words(_ groups: [Substring]) -> [UInt8]? {
            var out: [UInt8] = []
            for (index, g) in groups.enumerated() {
                if g.contains("."), index == groups.count - 1 {
                    guard let v4 = parseV4(g) else { return nil }
                    out += v4
                } else {
                    guard g.count <= 4, let n = UInt16(g, radix: 16) else { return nil }
                    out += [UInt8(n >> 8), UInt8(n & 0xFF)]
                }
            }
            return out
        }
        guard let h = words(head), let tl = words(tail) else { return nil }
        if sawGap {
            guard h.count + tl.count < 16 else { return nil }
            return h + [UInt8](repeating: 0, count: 16 - h.count - tl.count) + tl
        }
        return h.count == 16 ? h : nil
    }
}
