/// The server's allow file (DESIGN §12): one entry a line, `#` comments. An entry is a host
/// glob (`*.example.com`, `api.github.com`), an IP literal (IPv6 in brackets) or a CIDR, each
/// optionally followed by `:port[,port...]` (default 80 and 443); `*` alone matches any
/// destination (any host, and any port unless ports are given).
///
/// Globs match names only, case-insensitively; `*` matches any run of characters, dots
/// included (`*.example.com` matches `a.b.example.com` but not `example.com`).
public struct ProxyAllowList: Sendable, Hashable {
    /// One line of the file.
    public struct Entry: Sendable, Hashable {
        /// What the entry matches.
        public enum Pattern: Sendable, Hashable {
            /// `*` alone.
            case any
            /// A name glob (lower-cased).
            case glob(String)
            /// An address or a CIDR (`bits` = 32 or 128 for a single address).
            case network(ProxyIPAddress, bits: Int)
        }

        public var pattern: Pattern
        /// The ports allowed; `nil` means any port (only for `*` without ports).
        public var ports: Set<Int>?
    }

    /// A line that could not be read, with its 1-based number.
    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    public private(set) var entries: [Entry]

    /// The list used without an allow file: any host on 80 and 443.
    public static let `default` = ProxyAllowList(entries: [Entry(pattern: .any, ports: Set(ProxyDefaults.defaultPorts))])

    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// Parses the text of an allow file.
    public init(parsing text: String) throws(ParseError) {
        var entries: [Entry] = []
        var number = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            guard rawLine.utf8.count <= ProxyDefaults.maximumAllowFileLineLength else {
                throw ParseError(line: number, reason: "line longer than \(ProxyDefaults.maximumAllowFileLineLength) bytes")
            }
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingASCIIWhitespace()
            if trimmed.isEmpty { continue }
            guard entries.count < ProxyDefaults.maximumAllowFileEntries else {
                throw ParseError(line: number, reason: "more than \(ProxyDefaults.maximumAllowFileEntries) entries")
            }
            do {
                entries.append(try Self.parseEntry(trimmed))
            } catch {
                throw ParseError(line: number, reason: error.reason)
            }
        }
        self.entries = entries
    }

    struct EntryError: Error {
        var reason: String
    }

    static func parseEntry(_ text: Substring) throws(EntryError) -> Entry {
        guard !text.contains(where: { $0 == " " || $0 == "\t" }) else { throw EntryError(reason: "one entry a line, without spaces") }
        var hostPart = text
        var portPart: Substring?
        if text.hasPrefix("[") {
            // [v6], [v6]/bits, [v6/bits], each optionally followed by :ports
            guard let close = text.firstIndex(of: "]") else { throw EntryError(reason: "missing ]") }
            var after = text[text.index(after: close)...]
            var inside = text[text.index(after: text.startIndex)..<close]
            if after.hasPrefix("/") {
                let end = after.firstIndex(of: ":") ?? after.endIndex
                inside = Substring(String(inside) + String(after[after.startIndex..<end]))
                after = after[end...]
            }
            if after.hasPrefix(":") {
                portPart = after.dropFirst()
            } else if !after.isEmpty {
                throw EntryError(reason: "unexpected text after ]")
            }
            hostPart = inside
            guard hostPart.contains(":") else { throw EntryError(reason: "brackets are for IPv6 only") }
        } else if let colon = text.firstIndex(of: ":") {
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        var ports: Set<Int>? = Set(ProxyDefaults.defaultPorts)
        if let portPart {
            var parsed = Set<Int>()
            for piece in portPart.split(separator: ",", omittingEmptySubsequences: false) {
                guard let port = ProxyLine.parsePort(piece.utf8) else { throw EntryError(reason: "bad port \"\(piece)\"") }
                parsed.insert(port)
            }
            ports = parsed
        }
        if hostPart == "*" {
            return Entry(pattern: .any, ports: portPart == nil ? nil : ports)
        }
        if let slash = hostPart.firstIndex(of: "/") {
            let bitsText = hostPart[hostPart.index(after: slash)...]
            guard let address = ProxyIPAddress(hostPart[..<slash]) else { throw EntryError(reason: "bad CIDR address") }
            let maximum = address.bytes.count * 8
            guard !bitsText.isEmpty, bitsText.count <= 3, bitsText.allSatisfy({ $0.isASCII && $0.isNumber }),
                let bits = Int(bitsText), bits <= maximum
            else { throw EntryError(reason: "bad CIDR prefix length") }
            return Entry(pattern: .network(address, bits: bits), ports: ports)
        }
        if let address = ProxyIPAddress(hostPart) {
            return Entry(pattern: .network(address, bits: address.bytes.count * 8), ports: ports)
        }
        let glob = hostPart.lowercased()
        guard !glob.isEmpty, glob.utf8.count <= 253,
            glob.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e || $0 == 0x5f || $0 == 0x2a })
        else { throw EntryError(reason: "not a host glob, an IP address or a CIDR") }
        return Entry(pattern: .glob(glob), ports: ports)
    }

    /// Whether a name destination is allowed by a `*` or glob entry.
    public func allowsName(_ name: String, port: Int) -> Bool {
        let lowered = name.lowercased()
        return entries.contains { entry in
            guard entry.ports?.contains(port) ?? true else { return false }
            switch entry.pattern {
            case .any: return true
            case .glob(let glob): return Self.globMatches(Array(glob.utf8), Array(lowered.utf8))
            case .network: return false
            }
        }
    }

    /// Whether an address is allowed by a `*`, address or CIDR entry.
    public func allowsAddress(_ address: ProxyIPAddress, port: Int) -> Bool {
        entries.contains { entry in
            guard entry.ports?.contains(port) ?? true else { return false }
            switch entry.pattern {
            case .any: return true
            case .glob: return false
            case .network(let network, let bits): return address.isIn(network, bits: bits)
            }
        }
    }

    /// `*` matches any run of bytes; everything else matches itself. Iterative with one
    /// backtrack point, so it is linear-ish and cannot blow up on many stars.
    static func globMatches(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
        var p = 0, t = 0
        var star = -1, mark = 0
        while t < text.count {
            if p < pattern.count, pattern[p] != 0x2a, pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == 0x2a {
                star = p
                mark = t
                p += 1
            } else if star >= 0 {
                p = star + 1
                mark += 1
                t = mark
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == 0x2a { p += 1 }
        return p == pattern.count
    }
}

extension Substring {
    func trimmingASCIIWhitespace() -> Substring {
        var s = self
        while let first = s.first, first == " " || first == "\t" || first == "\r" { s = s.dropFirst() }
        while let last = s.last, last == " " || last == "\t" || last == "\r" { s = s.dropLast() }
        return s
    }
}
