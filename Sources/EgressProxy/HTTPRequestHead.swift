/// A request head as the agent reads it from an application: request line and header
/// lines, before any body byte.
public struct HTTPRequestHead: Hashable, Sendable {
    public var method: String
    public var target: String
    /// `HTTP/1.1` or `HTTP/1.0`.
    public var version: String
    /// Header lines in order, names as sent.
    public var headers: [HTTPHeader]

    public init(method: String, target: String, version: String, headers: [HTTPHeader]) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
    }

    /// The values of every header named `name` (case-insensitive).
    public func values(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }
}

/// One header line.
public struct HTTPHeader: Hashable, Sendable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// Reads a request head from the bytes of a client connection, bounded by
/// ``ProxyDefaults/maximumRequestHeadLength`` and ``ProxyDefaults/maximumHeaderCount``.
/// The bytes after the head (a body, or a tunnelled stream) are handed back untouched.
public struct HTTPRequestHeadParser: Sendable {
    /// What one ``append(_:)`` decided.
    public enum Result: Hashable, Sendable {
        case needMore
        /// The head and the bytes that followed it.
        case head(HTTPRequestHead, leftover: [UInt8])
        /// Not a request head we accept (400), with the reason.
        case invalid(String)
        /// The head is longer than the limit (431 would be exact; the agent answers 400).
        case tooLarge
    }

    private var buffer: [UInt8] = []
    private var done = false
    private let limit: Int

    public init(limit: Int = ProxyDefaults.maximumRequestHeadLength) {
        self.limit = limit
    }

    /// Adds bytes read from the client. The bytes of one call are already in memory, so they
    /// are taken whole; what is kept across calls never exceeds the limit.
    public mutating func append(_ bytes: some Collection<UInt8>) -> Result {
        guard !done else { return .invalid("head already read") }
        let start = buffer.count
        buffer.append(contentsOf: bytes)
        // The head ends at the first empty line (CRLF CRLF, or a bare LF LF).
        var i = max(0, start - 3)
        while i < buffer.count {
            if buffer[i] == 0x0a {
                if i + 1 < buffer.count, buffer[i + 1] == 0x0a {
                    return finish(headEnd: i + 1, bodyStart: i + 2)
                }
                if i + 2 < buffer.count, buffer[i + 1] == 0x0d, buffer[i + 2] == 0x0a {
                    return finish(headEnd: i + 1, bodyStart: i + 3)
                }
            }
            if i >= limit { break }
            i += 1
        }
        if buffer.count > limit {
            done = true
            buffer = []
            return .tooLarge
        }
        return .needMore
    }

    private mutating func finish(headEnd: Int, bodyStart: Int) -> Result {
        done = true
        defer { buffer = [] }
        guard headEnd <= limit else { return .tooLarge }
        let leftover = Array(buffer[bodyStart...])
        switch Self.parse(Array(buffer[0..<headEnd])) {
        case .success(let head): return .head(head, leftover: leftover)
        case .failure(let error): return .invalid(error.reason)
        }
    }

    struct HeadError: Error {
        var reason: String
    }

    static func parse(_ bytes: [UInt8]) -> Swift.Result<HTTPRequestHead, HeadError> {
        var lines = bytes.split(separator: 0x0a, omittingEmptySubsequences: false).map { line -> ArraySlice<UInt8> in
            line.last == 0x0d ? line.dropLast() : line
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let requestLine = lines.first, !requestLine.isEmpty else { return .failure(HeadError(reason: "empty request line")) }
        let parts = requestLine.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(HeadError(reason: "malformed request line")) }
        guard !parts[0].isEmpty, parts[0].allSatisfy(isTokenByte) else { return .failure(HeadError(reason: "bad method")) }
        guard !parts[1].isEmpty, parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return .failure(HeadError(reason: "bad request target")) }
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return .failure(HeadError(reason: "unsupported HTTP version")) }
        guard lines.count - 1 <= ProxyDefaults.maximumHeaderCount else { return .failure(HeadError(reason: "too many header lines")) }
        var headers: [HTTPHeader] = []
        for line in lines.dropFirst() {
            guard let first = line.first else { return .failure(HeadError(reason: "empty header line")) }
            guard first != 0x20, first != 0x09 else { return .failure(HeadError(reason: "obsolete line folding")) }
            guard let colon = line.firstIndex(of: 0x3a) else { return .failure(HeadError(reason: "header line without colon")) }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(isTokenByte) else { return .failure(HeadError(reason: "bad header name")) }
            var value = line[line.index(after: colon)...]
            while let c = value.first, c == 0x20 || c == 0x09 { value = value.dropFirst() }
            while let c = value.last, c == 0x20 || c == 0x09 { value = value.dropLast() }
            guard value.allSatisfy({ $0 >= 0x20 && $0 != 0x7f || $0 == 0x09 }) else { return .failure(HeadError(reason: "bad header value")) }
            headers.append(HTTPHeader(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        return .success(HTTPRequestHead(method: String(decoding: parts[0], as: UTF8.self),
                                        target: String(decoding: parts[1], as: UTF8.self), version: version, headers: headers))
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
