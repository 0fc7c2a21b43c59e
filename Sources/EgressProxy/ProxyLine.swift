/// The stream-opening lines of DESIGN §12: the agent writes `OPEN <host> <port>\n`; the server
/// answers `OK\n` or `ERR <code> <text>\n`. Lines are at most ``ProxyDefaults/maximumLineLength``
/// bytes, newline included.
public enum ProxyLine {
    /// A parsed `OPEN` line.
    public struct Open: Hashable, Sendable {
        /// The destination host: a name (lower-cased) or an IP literal (IPv6 without brackets).
        public var host: String
        /// The destination port, 1–65535.
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// Why an `OPEN` line was refused (the stream is reset).
    public enum Malformed: Error, Hashable, Sendable {
        case notOpen
        case badHost
        case badPort
        case tooLong
    }

    /// A parsed server answer.
    public enum Answer: Hashable, Sendable {
        /// `OK`: raw bytes follow both ways.
        case ok
        /// `ERR <code> <text>`; `code` is `nil` when the server sent a code we do not know
        /// (`rawCode` keeps it).
        case error(code: ProxyErrorCode?, rawCode: String, text: String)
        /// Anything else.
        case malformed
    }

    /// The line an agent writes to open a stream to `host:port`.
    public static func open(host: String, port: Int) -> String {
        "OPEN \(host) \(port)\n"
    }

    /// The server's `OK` line.
    public static let ok = "OK\n"

    /// The server's refusal line; the text is cut to keep the line within the limit and
    /// cleaned of control bytes.
    public static func error(_ code: ProxyErrorCode, _ text: String) -> String {
        let cleaned = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? " " : $0 }))
        let room = maximumLineLength - code.name.utf8.count - 6
        var cut = ""
        for character in cleaned {
            if cut.utf8.count + character.utf8.count > room { break }
            cut.append(character)
        }
        return "ERR \(code.name) \(cut)\n"
    }

    /// ``ProxyDefaults/maximumLineLength``.
    public static var maximumLineLength: Int { ProxyDefaults.maximumLineLength }

    /// Parses an `OPEN` line (without its `\n`; a trailing `\r` is tolerated).
    public static func parseOpen(_ line: some Collection<UInt8>) throws(Malformed) -> Open {
        var bytes = Array(line)
        guard bytes.count < maximumLineLength else { throw .tooLong }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        let parts = bytes.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].elementsEqual("OPEN".utf8) else { throw .notOpen }
        guard let host = ProxyHost.normalizedHost(parts[1]), ProxyHost(host) != nil else { throw .badHost }
        guard let port = parsePort(parts[2]) else { throw .badPort }
        return Open(host: host, port: port)
    }

    /// Parses the server's answer line (without its `\n`; a trailing `\r` is tolerated).
    public static func parseAnswer(_ line: some Collection<UInt8>) -> Answer {
        var bytes = Array(line)
        guard bytes.count < maximumLineLength else { return .malformed }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        if bytes.elementsEqual("OK".utf8) { return .ok }
        let prefix = Array("ERR ".utf8)
        guard bytes.starts(with: prefix) else { return .malformed }
        let rest = bytes.dropFirst(prefix.count)
        let space = rest.firstIndex(of: UInt8(ascii: " ")) ?? rest.endIndex
        let rawCode = String(decoding: rest[rest.startIndex..<space], as: UTF8.self)
        guard !rawCode.isEmpty, rawCode.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7a) || $0 == UInt8(ascii: "_") }) else {
            return .malformed
        }
        let text = space < rest.endIndex ? String(decoding: rest[rest.index(after: space)...], as: UTF8.self) : ""
        return .error(code: ProxyErrorCode(serverCode: rawCode), rawCode: rawCode, text: text)
    }

    /// A decimal port 1–65535 without sign or leading zero.
    public static func parsePort(_ bytes: some Collection<UInt8>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 5, bytes.first != UInt8(ascii: "0") else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return (1...65535).contains(value) ? value : nil
    }
}
