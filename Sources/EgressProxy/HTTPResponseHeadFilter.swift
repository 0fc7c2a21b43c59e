/// Drops hop-by-hop and `Proxy-*` headers from the destination's response heads on their way
/// to the application (the request side is ``HopByHopHeaders``), and says `Connection: close`,
/// which is what the agent does after each response.
///
/// Bytes go in as they come from the stream; what may be sent on comes out. Interim responses
/// (`1xx` except `101`) are filtered and the head after them too; after the final head (or a
/// `101`), everything passes untouched. Anything that does not look like an HTTP/1.x response
/// head, or a head over the limit, passes untouched from there on: filtering is best effort and
/// never holds more than `limit` bytes.
public struct HTTPResponseHeadFilter: Sendable {
    private var buffer: [UInt8] = []
    private var passing = false
    private let limit: Int

    public init(limit: Int = ProxyDefaults.maximumRequestHeadLength) {
        self.limit = limit
    }

    /// Whether every byte now passes untouched.
    public var isPassingThrough: Bool { passing }

    /// Feeds bytes; returns the bytes to send on now (possibly none while a head is incomplete).
    public mutating func process(_ bytes: some Collection<UInt8>) -> [UInt8] {
        if passing { return Array(bytes) }
        buffer.append(contentsOf: bytes)
        var output: [UInt8] = []
        while !passing {
            let prefix = Array("HTTP/1.".utf8)
            if !buffer.isEmpty, !(buffer.count >= prefix.count ? buffer.starts(with: prefix) : prefix.starts(with: buffer)) {
                giveUp(into: &output)
                break
            }
            guard let (headEnd, bodyStart) = Self.headEnd(buffer, limit: limit) else {
                if buffer.count > limit { giveUp(into: &output) }
                break
            }
            guard let (rewritten, status) = Self.rewrite(Array(buffer[0..<headEnd])) else {
                giveUp(into: &output)
                break
            }
            output += rewritten
            buffer.removeFirst(bodyStart)
            if !(100...199 ~= status) || status == 101 {
                passing = true
                output += buffer
                buffer = []
            }
        }
        return output
    }

    /// The bytes held back (an incomplete head), for when the stream ends; filtering stops.
    public mutating func drain() -> [UInt8] {
        passing = true
        defer { buffer = [] }
        return buffer
    }

    private mutating func giveUp(into output: inout [UInt8]) {
        passing = true
        output += buffer
        buffer = []
    }

    static func headEnd(_ bytes: [UInt8], limit: Int) -> (Int, Int)? {
        var i = 0
        while i < bytes.count, i <= limit {
            if bytes[i] == 0x0a {
                if i + 1 < bytes.count, bytes[i + 1] == 0x0a { return (i + 1, i + 2) }
                if i + 2 < bytes.count, bytes[i + 1] == 0x0d, bytes[i + 2] == 0x0a { return (i + 1, i + 3) }
            }
            i += 1
        }
        return nil
    }

    /// The filtered head and its status, or `nil` when it is not a well-formed response head.
    static func rewrite(_ head: [UInt8]) -> ([UInt8], Int)? {
        var lines = head.split(separator: 0x0a, omittingEmptySubsequences: false).map { $0.last == 0x0d ? $0.dropLast() : $0 }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let statusLine = lines.first, lines.count - 1 <= ProxyDefaults.maximumHeaderCount else { return nil }
        let parts = statusLine.split(separator: 0x20, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].starts(with: Array("HTTP/1.".utf8)), parts[1].count == 3,
            parts[1].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
        else { return nil }
        let status = parts[1].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        var headers: [HTTPHeader] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: 0x3a), colon > line.startIndex,
                line[line.startIndex..<colon].allSatisfy(HTTPRequestHeadParser.isTokenByte)
            else { return nil }
            var value = line[line.index(after: colon)...]
            while let c = value.first, c == 0x20 || c == 0x09 { value = value.dropFirst() }
            headers.append(HTTPHeader(String(decoding: line[line.startIndex..<colon], as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        var out = String(decoding: statusLine, as: UTF8.self) + "\r\n"
        if status == 101 {
            // The upgrade itself: its Connection and Upgrade headers are the point.
            for header in headers where !header.name.lowercased().hasPrefix("proxy-") && header.name.lowercased() != "keep-alive" {
                out += "\(header.name): \(header.value)\r\n"
            }
        } else {
            for header in HopByHopHeaders.filter(headers) { out += "\(header.name): \(header.value)\r\n" }
            if !(100...199 ~= status) { out += "Connection: close\r\n" }
        }
        out += "\r\n"
        return (Array(out.utf8), status)
    }
}
