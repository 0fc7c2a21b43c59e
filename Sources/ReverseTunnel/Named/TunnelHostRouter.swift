/// Maps a request's `Host` (or a TLS server name) to a tunnel name: `<name>.<domain>[:port]`,
/// compared without regard to case, a trailing dot ignored (DESIGN §11).
public struct TunnelHostRouter: Sendable {
    /// The domain under which tunnels live, lowercase, without a trailing dot.
    public let domain: String

    /// What a host selects.
    public enum Outcome: Equatable, Sendable {
        /// `<name>.<domain>` with a valid name.
        case name(TunnelName)
        /// No `Host` at all: 400.
        case missing
        /// A host that is not syntactically a host (empty, bad port, spaces): 400.
        case malformed
        /// `<label>.<domain>` whose label is not a valid tunnel name: 400.
        case badName(TunnelName.Problem)
        /// The bare domain, a deeper sub-domain, another domain or an IP address: 404.
        case otherHost
    }

    /// - Parameter domain: The tunnels' domain (`tunnels.example.com`).
    public init(domain: String) {
        var lowered = domain.lowercased()
        while lowered.hasSuffix(".") { lowered.removeLast() }
        self.domain = lowered
    }

    /// Whether `domain` is usable (at least one character, DNS labels separated by dots).
    public static func isValidDomain(_ domain: String) -> Bool {
        let labels = domain.lowercased().split(separator: ".", omittingEmptySubsequences: false)
        guard !labels.isEmpty, domain.utf8.count <= 253 else { return false }
        return labels.allSatisfy { TunnelName($0) != nil }
    }

    /// Routes one `Host` header value (`nil` when the request had none).
    public func route(host: String?) -> Outcome {
        guard let host else { return .missing }
        let trimmed = host.trimmingASCIIWhitespace()
        guard !trimmed.isEmpty else { return .missing }
        guard let hostPart = Self.stripPort(trimmed) else { return .malformed }
        return route(serverName: hostPart)
    }

    /// Routes a host name without a port (a TLS SNI value, or a `Host` after the port).
    public func route(serverName: String) -> Outcome {
        var lowered = serverName.lowercased()
        if lowered.hasSuffix(".") { lowered.removeLast() }
        guard !lowered.isEmpty, !lowered.contains(where: { $0 == " " || $0 == "\t" || $0 == "/" || $0 == "@" }) else {
            return .malformed
        }
        let suffix = "." + domain
        guard lowered.hasSuffix(suffix), lowered.utf8.count > suffix.utf8.count else { return .otherHost }
        let label = lowered.dropLast(suffix.count)
        guard !label.contains(".") else { return .otherHost }
        switch TunnelName.validate(label) {
        case .success(let name): return .name(name)
        case .failure(let problem): return .badName(problem)
        }
    }

    /// The host without its `:port`; `nil` when the port is not a number in 0...65535.
    /// A bracketed IPv6 literal is kept whole (it then routes to ``Outcome/otherHost``).
    static func stripPort(_ host: Substring) -> String? {
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if after.isEmpty { return String(host[...close]) }
            guard after.hasPrefix(":"), isPort(after.dropFirst()) else { return nil }
            return String(host[...close])
        }
        guard let colon = host.firstIndex(of: ":") else { return String(host) }
        guard isPort(host[host.index(after: colon)...]) else { return nil }
        return String(host[..<colon])
    }

    private static func isPort(_ text: Substring) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 5, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return false }
        return Int(text).map { $0 <= 65535 } ?? false
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    func trimmingASCIIWhitespace() -> Substring {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        let string = Substring(self)
        guard let first = string.firstIndex(where: { !isBlank($0) }), let last = string.lastIndex(where: { !isBlank($0) }) else {
            return ""
        }
        return string[first...last]
    }
}
