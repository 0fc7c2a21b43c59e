/// One reply of the Redis serialization protocol, RESP2 and RESP3
/// (https://redis.io/docs/latest/develop/reference/protocol-spec/).
public enum RESPValue: Hashable, Sendable {
    /// `+OK`
    case simpleString(String)
    /// `-ERR …` or RESP3 `!<len>` (bulk error).
    case error(String)
    /// `:<n>`
    case integer(Int64)
    /// `$<len>`; `nil` is RESP2's null bulk string (`$-1`).
    case bulkString([UInt8]?)
    /// `*<n>`; `nil` is RESP2's null array (`*-1`).
    case array([RESPValue]?)
    /// RESP3 `_`
    case null
    /// RESP3 `#t` / `#f`
    case boolean(Bool)
    /// RESP3 `,<double>` (`inf`, `-inf`, `nan` included)
    case double(Double)
    /// RESP3 `(<digits>`, kept as text.
    case bigNumber(String)
    /// RESP3 `=<len>` with its three-letter format.
    case verbatim(format: String, text: [UInt8])
    /// RESP3 `%<n>`, in the order received.
    case map([RESPPair])
    /// RESP3 `~<n>`
    case set([RESPValue])
    /// RESP3 `><n>`: out-of-band data (pub/sub messages, invalidations).
    case push([RESPValue])

    /// The bytes of a bulk string, a simple string or a verbatim string.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes?): return bytes
        case .simpleString(let text): return Array(text.utf8)
        case .verbatim(_, let text): return text
        default: return nil
        }
    }

    /// `bytes` as UTF-8 text.
    public var string: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    /// The elements of an array, set or push.
    public var elements: [RESPValue]? {
        switch self {
        case .array(let values?), .set(let values), .push(let values): return values
        default: return nil
        }
    }

    /// Whether this is RESP2's or RESP3's null.
    public var isNull: Bool {
        switch self {
        case .null, .bulkString(nil), .array(nil): return true
        default: return false
        }
    }
}

/// One key and value of a RESP3 map.
public struct RESPPair: Hashable, Sendable {
    public var key: RESPValue
    public var value: RESPValue

    public init(key: RESPValue, value: RESPValue) {
        self.key = key
        self.value = value
    }
}

/// Encodes commands: an array of bulk strings, as every Redis client sends them.
public enum RESPEncoder {
    /// `*<n>\r\n` then `$<len>\r\n<bytes>\r\n` per argument.
    public static func command(_ arguments: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16 + arguments.reduce(0) { $0 + $1.count + 16 })
        out.append(UInt8(ascii: "*"))
        out.append(contentsOf: Array(String(arguments.count).utf8))
        out.append(contentsOf: [13, 10])
        for argument in arguments {
            out.append(UInt8(ascii: "$"))
            out.append(contentsOf: Array(String(argument.count).utf8))
            out.append(contentsOf: [13, 10])
            out.append(contentsOf: argument)
            out.append(contentsOf: [13, 10])
        }
        return out
    }

    /// The same, for text arguments.
    public static func command(_ arguments: [String]) -> [UInt8] {
        command(arguments.map { Array($0.utf8) })
    }
}
