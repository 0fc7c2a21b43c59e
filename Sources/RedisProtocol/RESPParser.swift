/// A malformed or oversized reply. The connection that produced it cannot be trusted to be in
/// step any more and is closed.
public struct RESPError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Incremental RESP2/RESP3 parser: bytes in as they arrive, whole replies out. Pure; bounded:
/// a reply over the limits is an error, never an allocation of what a server claims.
public struct RESPParser: Sendable {
    /// Bounds on what one reply may make the parser hold.
    public struct Limits: Sendable, Hashable {
        /// Longest bulk string or verbatim string.
        public var maximumBulkLength = 64 * 1024 * 1024
        /// Most elements of one array, set, map or push.
        public var maximumElements = 1 << 20
        /// Deepest nesting.
        public var maximumDepth = 32
        /// Longest simple line (`+`, `-`, `:`, lengths, doubles, big numbers).
        public var maximumLineLength = 64 * 1024
        public init() {}
    }

    public let limits: Limits
    private var buffer: [UInt8] = []
    private var start = 0

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Bytes received and not yet parsed into a reply.
    public var bufferedCount: Int { buffer.count - start }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0, start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 4096, start * 2 > buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole reply, `nil` if more bytes are needed. Attributes (`|`) are read and
    /// dropped: they describe the reply that follows.
    public mutating func next() throws(RESPError) -> RESPValue? {
        var index = start
        while true {
            guard let (value, end) = try parse(at: index, depth: 0) else { return nil }
            index = end
            if case .attribute = value { continue }
            start = index
            guard case .value(let reply) = value else { continue }
            return reply
        }
    }

    private enum Parsed {
        case value(RESPValue)
        case attribute
    }

    /// Parses one value starting at `index`: the value and the index after it, or `nil` when
    /// the buffer ends first.
    private func parse(at index: Int, depth: Int) throws(RESPError) -> (Parsed, Int)? {
        guard depth <= limits.maximumDepth else { throw RESPError("reply nested deeper than \(limits.maximumDepth)") }
        guard index < buffer.count else { return nil }
        let type = buffer[index]
        guard let (line, afterLine) = try line(at: index + 1) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            return (.value(.simpleString(text(line))), afterLine)
        case UInt8(ascii: "-"):
            return (.value(.error(text(line))), afterLine)
        case UInt8(ascii: ":"):
            return (.value(.integer(try integer(line))), afterLine)
        case UInt8(ascii: "_"):
            guard line.isEmpty else { throw RESPError("null with a body") }
            return (.value(.null), afterLine)
        case UInt8(ascii: "#"):
            switch text(line) {
            case "t": return (.value(.boolean(true)), afterLine)
            case "f": return (.value(.boolean(false)), afterLine)
            default: throw RESPError("boolean is neither t nor f")
            }
        case UInt8(ascii: ","):
            return (.value(.double(try double(line))), afterLine)
        case UInt8(ascii: "("):
            let digits = text(line)
            let body = digits.hasPrefix("-") || digits.hasPrefix("+") ? digits.dropFirst() : Substring(digits)
            guard !body.isEmpty, body.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw RESPError("big number is not digits") }
            return (.value(.bigNumber(digits)), afterLine)
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            let length = try integer(line)
            if length == -1, type == UInt8(ascii: "$") { return (.value(.bulkString(nil)), afterLine) }
            guard length >= 0, length <= limits.maximumBulkLength else { throw RESPError("bulk length \(length) out of range") }
            let end = afterLine + Int(length)
            guard end + 2 <= buffer.count else { return nil }
            guard buffer[end] == 13, buffer[end + 1] == 10 else { throw RESPError("bulk string not followed by CRLF") }
            let body = Array(buffer[afterLine..<end])
            switch type {
            case UInt8(ascii: "$"): return (.value(.bulkString(body)), end + 2)
            case UInt8(ascii: "!"): return (.value(.error(String(decoding: body, as: UTF8.self))), end + 2)
            default:
                guard body.count >= 4, body[3] == UInt8(ascii: ":") else { throw RESPError("verbatim string without its format") }
                return (.value(.verbatim(format: String(decoding: body[0..<3], as: UTF8.self), text: Array(body[4...]))), end + 2)
            }
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            let count = try integer(line)
            if count == -1, type == UInt8(ascii: "*") { return (.value(.array(nil)), afterLine) }
            guard count >= 0, count <= limits.maximumElements else { throw RESPError("element count \(count) out of range") }
            let isPairs = type == UInt8(ascii: "%") || type == UInt8(ascii: "|")
            let total = Int(count) * (isPairs ? 2 : 1)
            var elements: [RESPValue] = []
            var cursor = afterLine
            for _ in 0..<total {
                // Attributes may precede any element; they are dropped.
                while true {
                    guard let (next, end) = try parse(at: cursor, depth: depth + 1) else { return nil }
                    cursor = end
                    if case .value(let value) = next {
                        elements.append(value)
                        break
                    }
                }
            }
            switch type {
            case UInt8(ascii: "*"): return (.value(.array(elements)), cursor)
            case UInt8(ascii: "~"): return (.value(.set(elements)), cursor)
            case UInt8(ascii: ">"): return (.value(.push(elements)), cursor)
            case UInt8(ascii: "%"):
                let pairs = stride(from: 0, to: elements.count, by: 2).map { RESPPair(key: elements[$0], value: elements[$0 + 1]) }
                return (.value(.map(pairs)), cursor)
            default:
                return (.attribute, cursor)
            }
        default:
            throw RESPError("unknown reply type byte \(type)")
        }
    }

    /// The bytes up to CRLF from `index`, and the index after the CRLF.
    private func line(at index: Int) throws(RESPError) -> (ArraySlice<UInt8>, Int)? {
        var i = index
        let limit = min(buffer.count, index + limits.maximumLineLength + 2)
        while i + 1 < limit {
            if buffer[i] == 13 {
                guard buffer[i + 1] == 10 else { throw RESPError("CR not followed by LF") }
                return (buffer[index..<i], i + 2)
            }
            i += 1
        }
        if buffer.count - index > limits.maximumLineLength + 1 { throw RESPError("line longer than \(limits.maximumLineLength)") }
        return nil
    }

    private func text(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    private func integer(_ bytes: ArraySlice<UInt8>) throws(RESPError) -> Int64 {
        guard bytes.count <= 20, let value = Int64(text(bytes)) else { throw RESPError("not an integer") }
        return value
    }

    private func double(_ bytes: ArraySlice<UInt8>) throws(RESPError) -> Double {
        switch text(bytes) {
        case "inf", "+inf": return .infinity
        case "-inf": return -.infinity
        case "nan", "-nan": return .nan
        case let text:
            guard text.count <= 64, let value = Double(text), value.isFinite else { throw RESPError("not a double") }
            return value
        }
    }
}
