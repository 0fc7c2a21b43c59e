/// Checks that a configuration file stays inside the TOML subset zrc-relay uses, before the
/// text reaches TOMLKit.
///
/// Why: toml++ (inside TOMLKit 0.6.0) checks some malformed inputs only with
/// `TOML_ASSERT_ASSUME` — an `assert` in debug builds (the process aborts) and
/// `__builtin_assume` in release builds (undefined behaviour). Two such inputs were found by
/// our fuzzing (`tools/fuzz/fixtures/config/`): a table header that starts with `=` and a date
/// whose time part is not a digit. A file is operator input and must get a clear error, never a
/// crash, so this gate accepts only the constructs a zrc-relay configuration needs and names
/// the line of anything else:
/// - comments and blank lines;
/// - table headers `[a]`, `[a.b]` with bare keys (`A-Z a-z 0-9 _ -`);
/// - `key = value` with a bare key (dotted allowed);
/// - values: basic strings `"…"` (with TOML escapes), literal strings `'…'`, decimal integers and
///   floats (with `_` between digits, signs, exponents), `true`/`false`, and arrays of those,
///   which may span lines and carry comments and a trailing comma.
/// Refused with a message: arrays of tables, inline tables, multi-line strings, dates and times,
/// hexadecimal/octal/binary integers, `inf`/`nan`.
///
/// Pure and total: it never traps, whatever the bytes.
public enum TOMLGate {
    /// Throws the first construct outside the subset, naming `file` and the line.
    public static func check(_ text: String, file: String) throws(ConfigError) {
        var scanner = Scanner(Array(text.utf8))
        do {
            try scanner.document()
        } catch let failure {
            // A bad value is reported against its key (as the loader reports bad values);
            // anything else against the file.
            throw ConfigError(key: failure.key ?? file, problem: "not valid TOML: line \(failure.line): \(failure.message)")
        }
    }

    struct Failure: Error {
        var line: Int
        var message: String
        /// The dotted key whose value is bad, when the failure is inside a value.
        var key: String?
    }

    /// A byte cursor over the file with the line number.
    struct Scanner {
        let bytes: [UInt8]
        var index = 0
        var line = 1
        /// The current `[table]` as a dotted prefix.
        var table = ""
        /// The full key whose value is being read.
        var valueKey: String?

        init(_ bytes: [UInt8]) {
            self.bytes = bytes
        }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        func peek(_ offset: Int) -> UInt8? {
            let position = index + offset
            return position < bytes.count ? bytes[position] : nil
        }

        func fail(_ message: String) -> Failure { Failure(line: line, message: message, key: valueKey) }

        mutating func advance() {
            if current == UInt8(ascii: "\n") { line += 1 }
            index += 1
        }

        // MARK: Document

        mutating func document() throws(Failure) {
            while current != nil {
                skipSpaces()
                guard let byte = current else { return }
                switch byte {
                case UInt8(ascii: "\n"):
                    advance()
                    continue
                case UInt8(ascii: "\r"):
                    try lineEnd()
                    continue
                case UInt8(ascii: "#"):
                    try comment()
                case UInt8(ascii: "["):
                    try tableHeader()
                default:
                    try keyValue()
                }
                try lineEnd()
            }
        }

        /// Spaces, an optional comment, then a newline or the end.
        mutating func lineEnd() throws(Failure) {
            skipSpaces()
            if current == UInt8(ascii: "#") { try comment() }
            if current == UInt8(ascii: "\r") {
                advance()
                guard current == UInt8(ascii: "\n") else { throw fail("a carriage return must be followed by a newline") }
            }
            guard let byte = current else { return }
            guard byte == UInt8(ascii: "\n") else { throw fail("unexpected \(describe(byte)) after the value") }
            advance()
        }

        mutating func skipSpaces() {
            while let byte = current, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { advance() }
        }

        mutating func comment() throws(Failure) {
            advance()  // '#'
            while let byte = current, byte != UInt8(ascii: "\n") {
                if byte == UInt8(ascii: "\r"), peek(1) == UInt8(ascii: "\n") { return }
                if isControl(byte) { throw fail("control character \(describe(byte)) in a comment") }
                advance()
            }
        }

        mutating func tableHeader() throws(Failure) {
            advance()  // '['
            if current == UInt8(ascii: "[") { throw fail("arrays of tables ([[…]]) are not used in this configuration") }
            skipSpaces()
            table = try dottedKey()
            skipSpaces()
            guard current == UInt8(ascii: "]") else { throw fail("a table header must end with ']'") }
            advance()
        }

        mutating func keyValue() throws(Failure) {
            let key = try dottedKey()
            skipSpaces()
            guard current == UInt8(ascii: "=") else { throw fail("expected '=' after the key") }
            advance()
            skipSpaces()
            valueKey = table.isEmpty ? key : table + "." + key
            try value(depth: 0)
            valueKey = nil
        }

        /// Reads `a.b.c`; returns it with single dots.
        mutating func dottedKey() throws(Failure) -> String {
            var parts = [try bareKey()]
            while true {
                skipSpaces()
                guard current == UInt8(ascii: ".") else { return parts.joined(separator: ".") }
                advance()
                skipSpaces()
                parts.append(try bareKey())
            }
        }

        mutating func bareKey() throws(Failure) -> String {
            let start = index
            while let byte = current, isBareKeyCharacter(byte) { advance() }
            guard index > start else {
                if let byte = current { throw fail("expected a key (letters, digits, '_' or '-'), found \(describe(byte))") }
                throw fail("expected a key, found the end of the file")
            }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        // MARK: Values

        mutating func value(depth: Int) throws(Failure) {
            guard let byte = current else { throw fail("expected a value, found the end of the file") }
            switch byte {
            case UInt8(ascii: "\""):
                if peek(1) == UInt8(ascii: "\""), peek(2) == UInt8(ascii: "\"") {
                    throw fail("multi-line strings are not accepted")
                }
                try basicString()
            case UInt8(ascii: "'"):
                if peek(1) == UInt8(ascii: "'"), peek(2) == UInt8(ascii: "'") {
                    throw fail("multi-line strings are not accepted")
                }
                try literalString()
            case UInt8(ascii: "["):
                guard depth < 4 else { throw fail("arrays nested too deeply") }
                try array(depth: depth + 1)
            case UInt8(ascii: "{"):
                throw fail("inline tables are not accepted; use a [section]")
            case UInt8(ascii: "t"), UInt8(ascii: "f"):
                try word()
            case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                try number()
            default:
                if isLetter(byte) { try word() }  // refused below unless true/false
                throw fail("\(describe(byte)) does not start a value (quote strings)")
            }
        }

        mutating func basicString() throws(Failure) {
            advance()  // '"'
            while let byte = current {
                switch byte {
                case UInt8(ascii: "\""):
                    advance()
                    return
                case UInt8(ascii: "\\"):
                    advance()
                    guard let escaped = current else { break }
                    switch escaped {
                    case UInt8(ascii: "b"), UInt8(ascii: "t"), UInt8(ascii: "n"), UInt8(ascii: "f"), UInt8(ascii: "r"),
                        UInt8(ascii: "\""), UInt8(ascii: "\\"):
                        advance()
                    case UInt8(ascii: "u"):
                        advance()
                        try unicodeEscape(digits: 4)
                    case UInt8(ascii: "U"):
                        advance()
                        try unicodeEscape(digits: 8)
                    default:
                        throw fail("unknown escape \\\(describe(escaped)) in a string")
                    }
                default:
                    if isControl(byte) { throw fail("control character \(describe(byte)) in a string (escape it)") }
                    advance()
                }
            }
            throw fail("a string is not closed on its line")
        }

        mutating func unicodeEscape(digits: Int) throws(Failure) {
            var scalar: UInt32 = 0
            for _ in 0..<digits {
                guard let byte = current, let digit = hexValue(byte) else { throw fail("a \\u escape needs \(digits) hex digits") }
                scalar = scalar << 4 | UInt32(digit)
                advance()
            }
            guard Unicode.Scalar(scalar) != nil else { throw fail("\\u escape is not a Unicode scalar value") }
        }

        mutating func literalString() throws(Failure) {
            advance()  // "'"
            while let byte = current {
                if byte == UInt8(ascii: "'") {
                    advance()
                    return
                }
                if isControl(byte) { throw fail("control character \(describe(byte)) in a string") }
                advance()
            }
            throw fail("a string is not closed on its line")
        }

        mutating func array(depth: Int) throws(Failure) {
            advance()  // '['
            while true {
                try skipArraySpace()
                guard let byte = current else { throw fail("an array is not closed") }
                if byte == UInt8(ascii: "]") {
                    advance()
                    return
                }
                try value(depth: depth)
                try skipArraySpace()
                guard let next = current else { throw fail("an array is not closed") }
                if next == UInt8(ascii: ",") {
                    advance()
                } else if next != UInt8(ascii: "]") {
                    throw fail("expected ',' or ']' in an array, found \(describe(next))")
                }
            }
        }

        /// Spaces, newlines and comments inside an array.
        mutating func skipArraySpace() throws(Failure) {
            while let byte = current {
                switch byte {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"):
                    advance()
                case UInt8(ascii: "\r"):
                    advance()
                    guard current == UInt8(ascii: "\n") else { throw fail("a carriage return must be followed by a newline") }
                case UInt8(ascii: "#"):
                    try comment()
                default:
                    return
                }
            }
        }

        mutating func word() throws(Failure) {
            let start = index
            while let byte = current, isBareKeyCharacter(byte) { advance() }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            guard text == "true" || text == "false" else {
                throw fail("\(ConfigError.quote(text)) is not a value (quote strings; booleans are true or false)")
            }
        }

        /// Decimal integers and floats: `[+-]digits[.digits][(e|E)[+-]digits]`, `_` only between digits.
        mutating func number() throws(Failure) {
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { advance() }
            guard let first = current, isDigit(first) else {
                throw fail("a sign must be followed by digits (inf and nan are not accepted)")
            }
            if first == UInt8(ascii: "0"), let second = peek(1), isLetter(second) {
                throw fail("only decimal numbers are accepted")
            }
            try digits()
            if let byte = current, byte == UInt8(ascii: "-") || byte == UInt8(ascii: ":") {
                throw fail("dates and times are not accepted here; durations are strings like \"30s\"")
            }
            if current == UInt8(ascii: ".") {
                advance()
                try digits()
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                advance()
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { advance() }
                try digits()
            }
            if let byte = current, isBareKeyCharacter(byte) || byte == UInt8(ascii: ".") {
                throw fail("\(describe(byte)) after a number (units go in a string: \"10Mbps\")")
            }
        }

        mutating func digits() throws(Failure) {
            guard let first = current, isDigit(first) else { throw fail("expected a digit") }
            advance()
            while let byte = current {
                if isDigit(byte) {
                    advance()
                } else if byte == UInt8(ascii: "_"), let next = peek(1), isDigit(next) {
                    advance()
                } else {
                    return
                }
            }
        }

        // MARK: Character classes

        func isBareKeyCharacter(_ byte: UInt8) -> Bool {
            isLetter(byte) || isDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }

        func isLetter(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
        }

        func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

        /// Control characters TOML forbids outside escapes (tab is allowed).
        func isControl(_ byte: UInt8) -> Bool { (byte < 0x20 && byte != UInt8(ascii: "\t")) || byte == 0x7F }

        func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
            default: return nil
            }
        }

        func describe(_ byte: UInt8) -> String {
            if byte >= 0x21, byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
            return "byte 0x\(String(byte, radix: 16))"
        }
    }
}
