import Crypto
import Foundation
import NIOHTTP1

/// The opening handshake of RFC 6455 as DESIGN §9 (v3) narrows it: a `GET` of one path with
/// `Upgrade: websocket`, version 13 and one subprotocol. Pure: it judges heads and computes
/// keys; the channel handlers do the I/O.
public enum WebSocketHandshake {
    /// The subprotocol of the relay's and the tunnel's WebSocket service.
    public static let relaySubprotocol = "zrc-relay.v1"
    /// The only WebSocket version there is.
    public static let version = "13"
    private static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// What the server does with a request head.
    public enum ServerDecision: Equatable, Sendable {
        /// Answer 101 with this `Sec-WebSocket-Accept` and the subprotocol.
        case upgrade(accept: String)
        /// Answer `status` with a short plain-text body and close.
        case refuse(status: HTTPResponseStatus, reason: String)

        /// Headers the refusal carries besides the body's (426 names the version it wants).
        public var extraHeaders: [(String, String)] {
            if case .refuse(.upgradeRequired, _) = self { return [("Sec-WebSocket-Version", WebSocketHandshake.version)] }
            return []
        }
    }

    /// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
    public static func accept(forKey key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Array((key + acceptGUID).utf8))
        return base64(Array(digest))
    }

    /// A fresh client key: 16 random bytes, base64.
    public static func makeKey() -> String {
        var generator = SystemRandomNumberGenerator()
        return base64((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// Judges a request head (DESIGN §9): 404 for another path; 426 without `Upgrade:
    /// websocket` or with another version; 400 for anything else malformed or a missing or
    /// wrong subprotocol.
    public static func evaluate(_ head: HTTPRequestHead, path: String, subprotocol: String = relaySubprotocol) -> ServerDecision {
        let requestPath = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? head.uri
        guard requestPath == path else { return .refuse(status: .notFound, reason: "no WebSocket service at this path") }
        let headers = head.headers
        guard tokens(headers, "Upgrade").contains("websocket") else {
            return .refuse(status: .upgradeRequired, reason: "this path needs a WebSocket upgrade")
        }
        guard headers["Sec-WebSocket-Version"].map({ $0.trimmingCharacters(in: .whitespaces) }) == [version] else {
            return .refuse(status: .upgradeRequired, reason: "only WebSocket version 13 is spoken here")
        }
        guard head.method == .GET else { return .refuse(status: .badRequest, reason: "a WebSocket upgrade is a GET") }
        guard head.version.major == 1, head.version.minor >= 1 else {
            return .refuse(status: .badRequest, reason: "a WebSocket upgrade needs HTTP/1.1")
        }
        guard tokens(headers, "Connection").contains("upgrade") else {
            return .refuse(status: .badRequest, reason: "Connection: Upgrade is missing")
        }
        let keys = headers["Sec-WebSocket-Key"]
        guard keys.count == 1, let key = keys.first?.trimmingCharacters(in: .whitespaces), decodedLength(ofBase64: key) == 16 else {
            return .refuse(status: .badRequest, reason: "Sec-WebSocket-Key is missing or malformed")
        }
        guard headers["Sec-WebSocket-Protocol"].flatMap({ $0.split(separator: ",") }).map({ String($0).trimmingCharacters(in: .whitespaces) })
            .contains(subprotocol) else {
            return .refuse(status: .badRequest, reason: "Sec-WebSocket-Protocol must offer \(subprotocol)")
        }
        return .upgrade(accept: accept(forKey: key))
    }

    /// Checks the server's answer to our upgrade request; `nil` when it is a valid 101.
    public static func problem(with head: HTTPResponseHead, key: String, subprotocol: String = relaySubprotocol) -> String? {
        guard head.status == .switchingProtocols else { return "no 101 Switching Protocols" }
        guard tokens(head.headers, "Upgrade").contains("websocket"), tokens(head.headers, "Connection").contains("upgrade") else {
            return "the 101 answer lacks Upgrade: websocket / Connection: Upgrade"
        }
        guard head.headers["Sec-WebSocket-Accept"].map({ $0.trimmingCharacters(in: .whitespaces) }) == [accept(forKey: key)] else {
            return "the 101 answer has a wrong Sec-WebSocket-Accept"
        }
        guard head.headers["Sec-WebSocket-Protocol"].map({ $0.trimmingCharacters(in: .whitespaces) }) == [subprotocol] else {
            return "the server did not agree on subprotocol \(subprotocol)"
        }
        return nil
    }

    /// The request head a client sends.
    public static func request(host: String, path: String, key: String, subprotocol: String = relaySubprotocol) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Upgrade", value: "websocket")
        headers.add(name: "Connection", value: "Upgrade")
        headers.add(name: "Sec-WebSocket-Key", value: key)
        headers.add(name: "Sec-WebSocket-Version", value: version)
        headers.add(name: "Sec-WebSocket-Protocol", value: subprotocol)
        headers.add(name: "User-Agent", value: "zrc-relay")
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
    }

    /// The 101 answer for an accepted upgrade.
    public static func switchingProtocols(accept: String, subprotocol: String = relaySubprotocol) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.add(name: "Upgrade", value: "websocket")
        headers.add(name: "Connection", value: "Upgrade")
        headers.add(name: "Sec-WebSocket-Accept", value: accept)
        headers.add(name: "Sec-WebSocket-Protocol", value: subprotocol)
        return HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
    }

    /// Comma-separated tokens of every `name` header, lowercased.
    private static func tokens(_ headers: HTTPHeaders, _ name: String) -> [String] {
        headers[name].flatMap { $0.split(separator: ",") }.map { String($0).trimmingCharacters(in: .whitespaces).lowercased() }
    }

    /// The byte count a padded base64 string decodes to, `nil` when it is not base64.
    static func decodedLength(ofBase64 text: String) -> Int? {
        Data(base64Encoded: text).map(\.count)
    }

    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}
