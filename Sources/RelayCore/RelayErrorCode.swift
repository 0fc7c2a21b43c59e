/// A relay protocol error code (DESIGN §4): the `code` of an ERROR frame and the QUIC
/// application close code when the relay closes a connection after the handshake.
public struct RelayErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// The wire value.
    public let rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Close code after GOAWAY replaced (not an error).
    public static let replaced = Self(rawValue: 0)
    public static let badMessage = Self(rawValue: 1)
    public static let invalidToken = Self(rawValue: 2)
    public static let untrustedKey = Self(rawValue: 3)
    public static let tokenExpired = Self(rawValue: 4)
    public static let allocationMismatch = Self(rawValue: 5)
    public static let unknownPeer = Self(rawValue: 6)
    public static let capacity = Self(rawValue: 7)
    public static let rateLimited = Self(rawValue: 8)
    public static let blocked = Self(rawValue: 9)
    public static let quotaExceeded = Self(rawValue: 10)
    public static let allocationExpired = Self(rawValue: 11)
    public static let draining = Self(rawValue: 12)
    public static let `internal` = Self(rawValue: 13)
    public static let released = Self(rawValue: 14)
    public static let peerTimeout = Self(rawValue: 15)
    public static let adminTerminated = Self(rawValue: 16)
    public static let revoked = Self(rawValue: 17)
    public static let tokenNotYetValid = Self(rawValue: 18)
    public static let wrongAudience = Self(rawValue: 19)
    public static let allocationEnded = Self(rawValue: 20)
    /// v3: the shared state (Redis) is unreachable; try another instance.
    public static let unavailable = Self(rawValue: 21)

    private static let names: [UInt16: String] = [
        0: "replaced", 1: "bad_message", 2: "invalid_token", 3: "untrusted_key", 4: "token_expired",
        5: "allocation_mismatch", 6: "unknown_peer", 7: "capacity", 8: "rate_limited", 9: "blocked",
        10: "quota_exceeded", 11: "allocation_expired", 12: "draining", 13: "internal", 14: "released",
        15: "peer_timeout", 16: "admin_terminated", 17: "revoked", 18: "token_not_yet_valid",
        19: "wrong_audience", 20: "allocation_ended", 21: "unavailable",
    ]

    /// Every defined code, in wire order.
    public static let all: [RelayErrorCode] = (0...21).map { Self(rawValue: UInt16($0)) }

    /// The snake_case name of DESIGN §4 (`"bad_message"`); `"code_N"` for an undefined value.
    public var name: String { Self.names[rawValue] ?? "code_\(rawValue)" }

    /// Looks a code up by its name.
    public init?(name: String) {
        guard let entry = Self.names.first(where: { $0.value == name }) else { return nil }
        self.rawValue = entry.key
    }

    public var description: String { name }
}

/// A relay failure that is thrown (malformed input): a code plus diagnostics for logs.
/// Equality and hashing compare only the code.
public struct RelayError: Error, Hashable, CustomStringConvertible {
    /// The protocol code this failure maps to.
    public let code: RelayErrorCode
    /// Why, for logs (never sent verbatim with secrets).
    public let reason: String
    private let file: String
    private let line: UInt

    init(code: RelayErrorCode, reason: String, file: String, line: UInt) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String { "\(code.name): \(reason)" }

    @inline(never)
    static func badMessage(_ reason: String, file: String = #fileID, line: UInt = #line) -> Self {
        Self(code: .badMessage, reason: reason, file: file, line: line)
    }

    @inline(never)
    static func invalidToken(_ reason: String, file: String = #fileID, line: UInt = #line) -> Self {
        Self(code: .invalidToken, reason: reason, file: file, line: line)
    }
}
