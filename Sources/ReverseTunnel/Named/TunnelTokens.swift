/// Which tokens a named-tunnel server accepts (DESIGN §11): none, one shared token for any
/// name (`--token`), or one token per name (`--tokens-file`). Tokens are compared in constant
/// time and never appear in `description`.
public enum TunnelTokens: Sendable, CustomStringConvertible {
    /// No token needed: any client may take any name.
    case open
    /// One token for every name.
    case shared([UInt8])
    /// A token per name; a token is valid only for its name.
    case perName([TunnelName: [UInt8]])

    /// What the tokens say about one hello.
    public enum Authorization: Equatable, Sendable {
        case allowed
        /// Refused; the reason goes after `DENIED`.
        case denied(String)
    }

    /// Checks `token` for `name`.
    /// - Parameters:
    ///   - name: The requested name.
    ///   - token: The token of the hello (`nil` when the client sent none).
    public func authorize(name: TunnelName, token: [UInt8]?) -> Authorization {
        switch self {
        case .open:
            return .allowed
        case .shared(let expected):
            guard let token else { return .denied("token required") }
            return TunnelHello.constantTimeEqual(token, expected) ? .allowed : .denied("bad token")
        case .perName(let table):
            guard let token else { return .denied("token required") }
            guard let expected = table[name] else {
                // Compare anyway so that an unknown name takes as long as a known one.
                _ = TunnelHello.constantTimeEqual(token, token)
                return .denied("name not allowed for this token")
            }
            return TunnelHello.constantTimeEqual(token, expected) ? .allowed : .denied("name not allowed for this token")
        }
    }

    /// Names that exist even without a client (they route to 502, not 404).
    public var reservedNames: Set<TunnelName> {
        if case .perName(let table) = self { return Set(table.keys) }
        return []
    }

    /// Whether a client must present a token.
    public var requiresToken: Bool {
        if case .open = self { return false }
        return true
    }

    /// Whether a client without `--name` may be given a random one (not with per-name tokens:
    /// a token there names its tunnel).
    public var allowsRandomNames: Bool {
        if case .perName = self { return false }
        return true
    }

    public var description: String {
        switch self {
        case .open: return "open"
        case .shared: return "shared token"
        case .perName(let table): return "tokens file (\(table.count) names)"
        }
    }
}

/// Reads a `--tokens-file`: one `name token` per line, `#` starts a comment, blank lines are
/// skipped. Each error names its line and never contains the token.
public enum TunnelTokensFileParser {
    /// The largest file accepted (a tokens file is a handful of lines).
    public static let maximumFileLength = 1 << 20
    /// The longest token accepted (it must fit a hello line).
    public static let maximumTokenLength = 1024

    /// A line the parser refuses.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        /// 1-based line number (0 for the file as a whole).
        public let line: Int
        public let reason: String
        public var description: String { line == 0 ? "tokens file: \(reason)" : "tokens file line \(line): \(reason)" }
    }

    /// Parses the file's bytes into a name → token table.
    public static func parse(_ bytes: some Collection<UInt8>) throws(ParseError) -> [TunnelName: [UInt8]] {
        guard bytes.count <= maximumFileLength else { throw ParseError(line: 0, reason: "larger than 1 MiB") }
        var table: [TunnelName: [UInt8]] = [:]
        var lineNumber = 0
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Array(rawLine)
            if let hash = line.firstIndex(of: UInt8(ascii: "#")) { line.removeSubrange(hash...) }
            let fields = line.split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") })
            if fields.isEmpty { continue }
            guard fields.count == 2 else { throw ParseError(line: lineNumber, reason: "expected \"name token\"") }
            let nameText = String(decoding: fields[0], as: UTF8.self)
            let name: TunnelName
            switch TunnelName.validate(nameText) {
            case .success(let valid): name = valid
            case .failure(let problem): throw ParseError(line: lineNumber, reason: problem.description)
            }
            let token = Array(fields[1])
            guard token.count <= maximumTokenLength else { throw ParseError(line: lineNumber, reason: "token longer than 1024 bytes") }
            guard token.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), token != Array("-".utf8) else {
                throw ParseError(line: lineNumber, reason: "token must be printable ASCII without spaces, and not \"-\"")
            }
            guard table[name] == nil else { throw ParseError(line: lineNumber, reason: "name \(name) listed twice") }
            table[name] = token
        }
        guard !table.isEmpty else { throw ParseError(line: 0, reason: "no entries") }
        return table
    }
}
