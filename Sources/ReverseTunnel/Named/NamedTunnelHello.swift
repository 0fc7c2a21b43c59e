/// The hello of a named tunnel (DESIGN §11), a superset of the plain tunnel's
/// (``TunnelHello``), on the first stream the client opens:
///
/// - `HELLO <name> <token>` → `OK <public-url>` or `DENIED <reason>`;
/// - `HELLO <name> -` asks for a name without a token; `HELLO * <token>` asks for a random name;
/// - the plain forms `HELLO` and `HELLO <token>` (what a client without `--name` sends, so the
///   same client works against a plain server) ask for a random name.
///
/// The client tells the modes apart by the answer: a plain server says `OK`, a named one
/// `OK <public-url>`.
public enum NamedTunnelHello {
    /// What the client asked for.
    public struct Request: Equatable, Sendable {
        /// The requested name, or `nil` for a random one.
        public var name: TunnelName?
        /// The token, or `nil` when none was sent.
        public var token: [UInt8]?
    }

    /// How the server reads a hello line.
    public enum Parsed: Equatable, Sendable {
        case request(Request)
        /// Not a hello this server understands; the reason goes after `DENIED`.
        case refused(String)
    }

    /// The field that stands for "any name" in the two-field form.
    public static let anyName = "*"
    /// The field that stands for "no token" in the two-field form.
    public static let noToken = "-"

    /// Parses a complete line (without its `\n`; a trailing `\r` is ignored).
    public static func parse(line: [UInt8]) -> Parsed {
        var text = line
        if text.last == UInt8(ascii: "\r") { text.removeLast() }
        let prefix = Array("HELLO".utf8)
        guard text.starts(with: prefix) else { return .refused("expected HELLO") }
        let rest = text.dropFirst(prefix.count)
        if rest.isEmpty { return .request(Request(name: nil, token: nil)) }
        guard rest.first == UInt8(ascii: " ") else { return .refused("expected HELLO") }
        let fields = rest.dropFirst().split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard fields.allSatisfy({ !$0.isEmpty }) else { return .refused("malformed hello") }
        switch fields.count {
        case 1:
            return .request(Request(name: nil, token: Array(fields[0])))
        case 2:
            let nameField = String(decoding: fields[0], as: UTF8.self)
            let token: [UInt8]? = fields[1].elementsEqual(noToken.utf8) ? nil : Array(fields[1])
            if nameField == anyName { return .request(Request(name: nil, token: token)) }
            switch TunnelName.validate(nameField) {
            case .success(let name): return .request(Request(name: name, token: token))
            case .failure(let problem): return .refused(problem.description)
            }
        default:
            return .refused("malformed hello")
        }
    }

    /// The client's line. Without a name it is the plain hello (``TunnelHello/request(token:)``).
    public static func request(name: String?, token: String?) -> String {
        guard let name else { return TunnelHello.request(token: token) }
        let tokenField = token.flatMap { $0.isEmpty ? nil : $0 } ?? noToken
        return "HELLO \(name) \(tokenField)\n"
    }

    /// The server's acceptance line.
    public static func accepted(publicURL: String) -> String { "OK \(publicURL)\n" }

    /// The server's refusal line (the reason is kept on one line).
    public static func denied(_ reason: String) -> String {
        "DENIED \(String(reason.map { $0.isNewline ? " " : $0 }))\n"
    }

    /// What the client makes of the server's answer.
    public enum Answer: Equatable, Sendable {
        /// `OK` (plain server: `url` is `nil`) or `OK <url>` (named server).
        case accepted(url: String?)
        case denied(String)
        /// Anything else.
        case malformed(String)
    }

    /// Parses the server's answer line (without `\n`).
    public static func parseAnswer(_ line: [UInt8]) -> Answer {
        var text = line
        if text.last == UInt8(ascii: "\r") { text.removeLast() }
        if text == Array("OK".utf8) { return .accepted(url: nil) }
        if text.starts(with: "OK ".utf8) {
            let url = String(decoding: text.dropFirst(3), as: UTF8.self)
            return url.isEmpty ? .malformed("empty URL") : .accepted(url: url)
        }
        if text.starts(with: "DENIED ".utf8) { return .denied(String(decoding: text.dropFirst(7), as: UTF8.self)) }
        return .malformed("unexpected answer \"\(String(decoding: text.prefix(64), as: UTF8.self))\"")
    }
}
