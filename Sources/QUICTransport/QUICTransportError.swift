#if canImport(Glibc)
import Glibc
#endif
internal import CNGTCP2

/// Failures of the QUIC endpoint's own set-up (sockets, TLS material). Packet-level problems are
/// never thrown: they are dropped, counted, or turned into a CONNECTION_CLOSE.
public struct QUICTransportError: Error, Hashable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Hashable, Sendable {
        case socket, bind, tls, resolve, invalidArgument, notRunning
    }

    /// The failure kind; equality and hashing use only this.
    public let code: Code
    private let reason: String

    /// A line for logs and operators.
    public var description: String { "\(code.rawValue): \(reason)" }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    init(code: Code, reason: String) {
        self.code = code
        self.reason = reason
    }

    @inline(never)
    static func system(_ code: Code, _ call: String, errno value: Int32 = errno) -> Self {
        Self(code: code, reason: "\(call): \(String(cString: strerror(value)))")
    }

    @inline(never)
    static func tls(_ call: String, _ status: Int32) -> Self {
        Self(code: .tls, reason: "\(call) failed (GnuTLS error \(status))")
    }

    /// A client connection could not be created.
    public static let connectFailed = Self(code: .invalidArgument, reason: "cannot open a QUIC connection")

    @inline(never)
    static func invalid(_ reason: String) -> Self {
        Self(code: .invalidArgument, reason: reason)
    }
}
