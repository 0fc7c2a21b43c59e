import EgressProxy
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Resolves a destination name once, on NIO's blocking-I/O thread pool, into addresses the
/// policy can check; the server dials one of those, never the name again.
enum ProxyResolver {
    /// The most addresses taken from one answer.
    static let maximumAnswers = 32

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func resolve(_ name: String, on loop: any EventLoop) -> EventLoopFuture<[ProxyIPAddress]> {
        NIOThreadPool.singleton.runIfActive(eventLoop: loop) { () throws -> [ProxyIPAddress] in
            try lookUp(name)
        }
    }

    static func lookUp(_ name: String) throws -> [ProxyIPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(name, nil, &hints, &result)
        guard status == 0, let first = result else {
            let text = gai_strerror(status).map { String(cString: $0) } ?? "error \(status)"
            throw Failure(description: text)
        }
        defer { freeaddrinfo(first) }
        var addresses: [ProxyIPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor, addresses.count < maximumAnswers {
            cursor = entry.pointee.ai_next
            guard let raw = entry.pointee.ai_addr else { continue }
            var address: ProxyIPAddress?
            switch Int32(raw.pointee.sa_family) {
            case AF_INET:
                guard Int(entry.pointee.ai_addrlen) >= MemoryLayout<sockaddr_in>.size else { continue }
                let v4 = UnsafeRawPointer(raw).loadUnaligned(as: sockaddr_in.self)
                address = .v4(UInt32(bigEndian: v4.sin_addr.s_addr))
            case AF_INET6:
                guard Int(entry.pointee.ai_addrlen) >= MemoryLayout<sockaddr_in6>.size else { continue }
                var v6 = UnsafeRawPointer(raw).loadUnaligned(as: sockaddr_in6.self)
                let bytes = withUnsafeBytes(of: &v6.sin6_addr) { Array($0) }
                address = ProxyIPAddress(bytes: bytes)
            default:
                continue
            }
            if let address, !addresses.contains(address) { addresses.append(address) }
        }
        guard !addresses.isEmpty else { throw Failure(description: "no address") }
        return addresses
    }

    /// The socket address to dial for a checked address.
    static func socketAddress(_ address: ProxyIPAddress, port: Int) throws -> SocketAddress {
        try SocketAddress(ipAddress: address.description, port: port)
    }

    /// A socket address as a policy address.
    static func proxyAddress(_ address: SocketAddress) -> ProxyIPAddress? {
        address.ipAddress.flatMap { ProxyIPAddress($0) }
    }
}
