/// A destination host as the policy sees it: a DNS name or an IP literal.
public enum ProxyHost: Hashable, Sendable, CustomStringConvertible {
    /// A name, lower-cased, without a trailing dot.
    case name(String)
    /// An IP literal.
    case address(ProxyIPAddress)

    /// Classifies a host as written in `OPEN` or a request (IPv6 may be bracketed).
    public init?(_ text: String) {
        guard let normalized = Self.normalizedHost(text.utf8) else { return nil }
        if let address = ProxyIPAddress(normalized) {
            self = .address(address)
        } else if Self.isValidName(normalized) {
            self = .name(normalized)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .name(let name): return name
        case .address(let address): return address.description
        }
    }

    /// Lower-cases, strips IPv6 brackets and one trailing dot; `nil` when the bytes cannot
    /// be a host (empty, too long, or a byte no name or literal has).
    public static func normalizedHost(_ raw: some Collection<UInt8>) -> String? {
        var bytes = Array(raw)
        var bracketed = false
        if bytes.first == UInt8(ascii: "["), bytes.last == UInt8(ascii: "]"), bytes.count > 2 {
            bytes = Array(bytes.dropFirst().dropLast())
            bracketed = true
        }
        if bytes.last == UInt8(ascii: "."), bytes.count > 1 { bytes.removeLast() }
        guard !bytes.isEmpty, bytes.count <= 253 else { return nil }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"):
                continue
            case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                continue
            default:
                return nil
            }
        }
        let text = String(decoding: bytes, as: UTF8.self).lowercased()
        if text.contains(":") || bracketed {
            guard case .v6 = ProxyIPAddress(text) else { return nil }
            return text
        }
        return text
    }

    /// A DNS name: labels of 1–63 bytes of letters, digits, `-` and `_`, separated by dots.
    static func isValidName(_ text: String) -> Bool {
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        return !labels.isEmpty && labels.allSatisfy { !$0.isEmpty && $0.utf8.count <= 63 && !$0.contains(":") }
    }
}
