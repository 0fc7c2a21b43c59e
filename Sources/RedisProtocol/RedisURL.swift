/// `redis://[user[:password]@]host[:port][/db]` or `rediss://…` (TLS). Pure parsing; the
/// password is never part of `description`.
public struct RedisURL: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int
    public var tls: Bool

    /// Why a URL is refused (without echoing its password).
    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(parsing text: String) throws(ParseError) {
        let scheme: Substring
        let rest: Substring
        if text.hasPrefix("redis://") {
            scheme = "redis"
            rest = text.dropFirst(8)
        } else if text.hasPrefix("rediss://") {
            scheme = "rediss"
            rest = text.dropFirst(9)
        } else {
            throw ParseError(description: "must start with redis:// or rediss://")
        }
        tls = scheme == "rediss"
        var authority = rest
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[rest.index(after: slash)...]
        }
        if let at = authority.lastIndex(of: "@") {
            let credentials = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                username = user.isEmpty ? nil : Self.percentDecoded(user)
                password = Self.percentDecoded(credentials[credentials.index(after: colon)...])
            } else {
                username = nil
                password = credentials.isEmpty ? nil : Self.percentDecoded(credentials)
            }
        } else {
            username = nil
            password = nil
        }
        var hostPart = authority
        var portPart: Substring?
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw ParseError(description: "unclosed [ in the host") }
            let after = hostPart[hostPart.index(after: close)...]
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
            if after.hasPrefix(":") { portPart = after.dropFirst() } else if !after.isEmpty { throw ParseError(description: "text after ]") }
        } else if let colon = hostPart.lastIndex(of: ":") {
            portPart = hostPart[hostPart.index(after: colon)...]
            hostPart = hostPart[..<colon]
        }
        guard !hostPart.isEmpty, hostPart.allSatisfy({ $0.isLetter || $0.isNumber || ".-:_".contains($0) }) else {
            throw ParseError(description: "no valid host")
        }
        host = String(hostPart)
        if let portPart {
            guard let value = Int(portPart), (1...65535).contains(value) else { throw ParseError(description: "port must be 1–65535") }
            port = value
        } else {
            port = 6379
        }
        let dbText = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        if dbText.isEmpty {
            database = 0
        } else {
            guard let value = Int(dbText), value >= 0, value < 1 << 16 else { throw ParseError(description: "database must be a number") }
            database = value
        }
    }

    /// The URL with the password replaced by `<redacted>`.
    public var description: String {
        let credentials: String
        switch (username, password) {
        case (nil, nil): credentials = ""
        case (let user?, nil): credentials = "\(user)@"
        case (let user, _?): credentials = "\(user ?? ""):<redacted>@"
        }
        let hostText = host.contains(":") ? "[\(host)]" : host
        return "\(tls ? "rediss" : "redis")://\(credentials)\(hostText):\(port)/\(database)"
    }

    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
               let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
