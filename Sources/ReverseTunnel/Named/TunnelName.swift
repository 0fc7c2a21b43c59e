/// The name of a named tunnel (DESIGN §11): one DNS label, `[a-z0-9-]{1,63}` with no leading
/// or trailing `-`. It is the first label of the tunnel's public host name.
public struct TunnelName: Hashable, Sendable, CustomStringConvertible {
    /// The label, lowercase.
    public let rawValue: String

    /// The longest label DNS allows.
    public static let maximumLength = 63
    /// The length of the names the server makes up for clients that ask for none.
    public static let randomLength = 8

    /// Why a string is not a valid name (each reason is shown to the client after `DENIED`).
    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        case tooLong(Int)
        case invalidCharacter
        case hyphenAtEdge

        public var description: String {
            switch self {
            case .empty: return "bad name: empty"
            case .tooLong(let n): return "bad name: \(n) characters (at most 63)"
            case .invalidCharacter: return "bad name: only a-z, 0-9 and - are allowed"
            case .hyphenAtEdge: return "bad name: must not start or end with -"
            }
        }
    }

    /// Checks `text` and returns the name, or the first rule it breaks. Upper-case letters are
    /// refused (not folded): a client names itself exactly.
    public static func validate(_ text: some StringProtocol) -> Result<TunnelName, Problem> {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return .failure(.empty) }
        guard bytes.count <= maximumLength else { return .failure(.tooLong(bytes.count)) }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"): continue
            default: return .failure(.invalidCharacter)
            }
        }
        guard bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-") else { return .failure(.hyphenAtEdge) }
        return .success(TunnelName(unchecked: String(decoding: bytes, as: UTF8.self)))
    }

    /// The name, or `nil` when `text` is not a valid label.
    public init?(_ text: some StringProtocol) {
        guard case .success(let name) = Self.validate(text) else { return nil }
        self = name
    }

    private init(unchecked: String) { self.rawValue = unchecked }

    /// A random name of ``randomLength`` characters from `[a-z0-9]` (never a hyphen, so it is
    /// always valid).
    public static func random(using generator: inout some RandomNumberGenerator) -> TunnelName {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(randomLength)
        for _ in 0..<randomLength {
            bytes.append(alphabet[Int(generator.next(upperBound: UInt32(alphabet.count)))])
        }
        return TunnelName(unchecked: String(decoding: bytes, as: UTF8.self))
    }

    public var description: String { rawValue }
}
