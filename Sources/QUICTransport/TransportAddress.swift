#if canImport(Glibc)
import Glibc
#endif
internal import CNGTCP2

/// An IPv4 or IPv6 address with a port — a "transport address" in the STUN/TURN sense: what a
/// packet came from or goes to, and a relay's observed and advertised addresses. (Named apart
/// from NIO's `SocketAddress`, which modules using both would otherwise have to qualify.)
public struct TransportAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address family and raw bytes.
    public enum Host: Hashable, Sendable {
        /// Four bytes, network order.
        case v4(UInt8, UInt8, UInt8, UInt8)
        /// Sixteen bytes, network order, plus the scope id.
        case v6([UInt8], scopeID: UInt32)
    }

    /// The host part.
    public var host: Host
    /// The port, host byte order.
    public var port: UInt16

    /// Creates an address from its parts.
    public init(host: Host, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// The raw address bytes (4 or 16), for CIDR matching and rate-limit keys.
    public var addressBytes: [UInt8] {
        switch host {
        case .v4(let a, let b, let c, let d): return [a, b, c, d]
        case .v6(let bytes, _): return bytes
        }
    }

    /// Whether the host is the unspecified address (0.0.0.0 or ::): a wildcard bind.
    public var isWildcard: Bool {
        switch host {
        case .v4(0, 0, 0, 0): return true
        case .v4: return false
        case .v6(let bytes, _): return bytes.allSatisfy { $0 == 0 }
        }
    }

    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4
    /// peers) as plain IPv4; any other address unchanged.
    public var unmappingIPv4: TransportAddress {
        guard case .v6(let bytes, _) = host, bytes.count == 16,
              bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff
        else { return self }
        return TransportAddress(host: .v4(bytes[12], bytes[13], bytes[14], bytes[15]), port: port)
    }

    /// The host alone, IPv6 without brackets.
    public var hostString: String {
        switch host {
        case .v4(let a, let b, let c, let d): return "\(a).\(b).\(c).\(d)"
        case .v6(let bytes, _):
            var storage = in6_addr()
            withUnsafeMutableBytes(of: &storage) { raw in
                for i in 0..<16 { raw[i] = bytes[i] }
            }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &storage, &buffer, socklen_t(buffer.count)) != nil else { return "::" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// `ip:port`, IPv6 as `[ip]:port` (the observed_addr format of the control protocol).
    public var description: String {
        switch host {
        case .v4: return "\(hostString):\(port)"
        case .v6: return "[\(hostString)]:\(port)"
        }
    }

    /// Parses a numeric `ip` (no port) and attaches `port`. Returns `nil` for names or bad text.
    public init?(ipAddress text: String, port: UInt16) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            let bytes = withUnsafeBytes(of: &v4) { Array($0) }
            self.init(host: .v4(bytes[0], bytes[1], bytes[2], bytes[3]), port: port)
            return
        }
        var trimmed = Substring(text)
        if trimmed.hasPrefix("["), trimmed.hasSuffix("]") { trimmed = trimmed.dropFirst().dropLast() }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, String(trimmed), &v6) == 1 {
            self.init(host: .v6(withUnsafeBytes(of: &v6) { Array($0) }, scopeID: 0), port: port)
            return
        }
        return nil
    }

    /// Parses `ip:port` or `[ipv6]:port` (numeric only).
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        let hostPart = String(text[text.startIndex..<colon])
        guard let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        if hostPart.contains(":"), !hostPart.hasPrefix("[") { return nil }
        self.init(ipAddress: hostPart, port: port)
    }

    /// Resolves `host` (a name or a literal) to its first address, with getaddrinfo.
    public static func resolve(host: String, port: UInt16) -> TransportAddress? {
        if let literal = TransportAddress(ipAddress: host, port: port) { return literal }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let current = node {
            if let sa = current.pointee.ai_addr,
               var address = TransportAddress(sockaddr: sa, length: current.pointee.ai_addrlen) {
                address.port = port
                return address
            }
            node = current.pointee.ai_next
        }
        return nil
    }

    /// The local address the kernel would send from to reach `remote` (a connected UDP socket's
    /// name; no packet is sent). Used as "the address the client reached" on a wildcard bind.
    public static func localAddress(toward remote: TransportAddress) -> TransportAddress? {
        guard let fd = remote.connectedDatagramSocket() else { return nil }
        defer { close(fd) }
        let storage = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
        defer { storage.deallocate() }
        var nameLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &nameLength) }
        guard named == 0 else { return nil }
        return storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { TransportAddress(sockaddr: $0, length: nameLength) }
    }

    /// A UDP socket connected to this address (the caller closes it), `nil` on failure.
    func connectedDatagramSocket() -> Int32? {
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        let storage = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
        defer { storage.deallocate() }
        let length = write(to: storage)
        let connected = storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Decodes a kernel `sockaddr`; `nil` for families other than IPv4 and IPv6.
    init?(sockaddr pointer: UnsafePointer<sockaddr>, length: socklen_t) {
        switch Int32(pointer.pointee.sa_family) {
        case AF_INET where Int(length) >= MemoryLayout<sockaddr_in>.size:
            let sin = UnsafeRawPointer(pointer).loadUnaligned(as: sockaddr_in.self)
            let bytes = withUnsafeBytes(of: sin.sin_addr) { Array($0) }
            self.init(host: .v4(bytes[0], bytes[1], bytes[2], bytes[3]), port: UInt16(bigEndian: sin.sin_port))
        case AF_INET6 where Int(length) >= MemoryLayout<sockaddr_in6>.size:
            let sin6 = UnsafeRawPointer(pointer).loadUnaligned(as: sockaddr_in6.self)
            self.init(
                host: .v6(withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }, scopeID: sin6.sin6_scope_id),
                port: UInt16(bigEndian: sin6.sin6_port))
        default:
            return nil
        }
    }

    /// The address family, AF_INET or AF_INET6.
    var family: Int32 {
        switch host {
        case .v4: return AF_INET
        case .v6: return AF_INET6
        }
    }

    /// Writes this address into `storage` and returns its length.
    func write(to storage: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t {
        let raw = UnsafeMutableRawPointer(storage)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<sockaddr_storage>.size)
        switch host {
        case .v4(let a, let b, let c, let d):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { bytes in
                bytes[0] = a; bytes[1] = b; bytes[2] = c; bytes[3] = d
            }
            raw.storeBytes(of: sin, as: sockaddr_in.self)
            return socklen_t(MemoryLayout<sockaddr_in>.size)
        case .v6(let bytes, let scope):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            sin6.sin6_scope_id = scope
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { out in
                for i in 0..<min(16, bytes.count) { out[i] = bytes[i] }
            }
            raw.storeBytes(of: sin6, as: sockaddr_in6.self)
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }
}
