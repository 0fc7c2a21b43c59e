/// The tunnel's one handshake message, on the first stream the tunnel client opens:
/// `HELLO [token]\n` from the client, then `OK\n` or `DENIED <reason>\n` from the server.
/// See docs/PROTOCOL.md ("Reverse tunnel").
public enum TunnelHello {
    /// The longest hello line accepted (token included), so a peer cannot make the server
    /// buffer without bound.
    public static let maximumLineLength = 4096

    /// The line a server writes on a client's hello stream when a newer client replaced it.
    public static let replaced = "REPLACED\n"

    /// The client's line.
    public static func request(token: String?) -> String {
        if let token, !token.isEmpty { return "HELLO \(token)\n" }
        return "HELLO\n"
    }

    /// What the server makes of a received line.
    public enum Verdict: Equatable, Sendable {
        /// Accepted: answer `OK`.
        case accepted
        /// Refused with this reason: answer `DENIED <reason>` and end the session.
        case denied(String)
    }

    /// Checks a complete line (without its `\n`) against the server's token.
    /// - Parameters:
    ///   - line: The received bytes before the newline.
    ///   - expectedToken: The server's `--token`, or `nil` when none is required.
    public static func check(line: [UInt8], expectedToken: String?) -> Verdict {
        var text = line
        if text.last == UInt8(ascii: "\r") { text.removeLast() }
        let prefix = Array("HELLO".utf8)
        guard text.count >= prefix.count, Array(text[0..<prefix.count]) == prefix else {
            return .denied("expected HELLO")
        }
        var rest = Array(text[prefix.count...])
        if rest.first == UInt8(ascii: " ") { rest.removeFirst() } else if !rest.isEmpty { return .denied("expected HELLO") }
        guard let expectedToken, !expectedToken.isEmpty else { return .accepted }
        return constantTimeEqual(rest, Array(expectedToken.utf8)) ? .accepted : .denied("bad token")
    }

    /// The server's answer line for a verdict.
    public static func answer(_ verdict: Verdict) -> String {
        switch verdict {
        case .accepted: return "OK\n"
        case .denied(let reason): return "DENIED \(reason)\n"
        }
    }

    /// Parses the server's answer line (without `\n`): `nil` when accepted, else the reason.
    public static func refusal(inAnswer line: [UInt8]) -> String? {
        var text = line
        if text.last == UInt8(ascii: "\r") { text.removeLast() }
        if text == Array("OK".utf8) { return nil }
        let denied = Array("DENIED ".utf8)
        if text.count >= denied.count, Array(text[0..<denied.count]) == denied {
            return String(decoding: text[denied.count...], as: UTF8.self)
        }
        return "unexpected answer \"\(String(decoding: text.prefix(64), as: UTF8.self))\""
    }

    /// Compares without an early exit, so the time taken does not reveal the matching prefix.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        let n = max(a.count, b.count)
        for i in 0..<n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            difference |= x ^ y
        }
        return difference == 0
    }
}
