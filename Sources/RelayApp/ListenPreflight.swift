#if canImport(Glibc)
import Glibc
#endif
import RelayConfig

/// Checks, before any service starts, that every address the relay will listen on can be
/// bound, so that a port already in use is one line naming the key and the address (exit 1,
/// a run-time failure: the configuration itself is valid) instead of a half-started relay.
public enum ListenPreflight {
    /// One socket the relay will bind.
    public struct Listener: Sendable {
        public var key: String
        public var host: String
        public var port: UInt16
        public var isUDP: Bool
    }

    /// The listeners `serve` will open with these settings.
    public static func listeners(of settings: RelaySettings) -> [Listener] {
        var out = [Listener(key: "server.listen_port", host: settings.server.listenAddress, port: settings.server.listenPort, isUDP: true)]
        if settings.fallback.enabled {
            out.append(Listener(key: "server.listen_port", host: settings.server.listenAddress, port: settings.server.listenPort, isUDP: false))
            if let extra = settings.fallback.extraListen {
                out.append(Listener(key: "fallback.extra_listen", host: extra.host, port: extra.port, isUDP: false))
            }
        }
        out.append(Listener(key: "metrics.listen", host: settings.metricsListen.host, port: settings.metricsListen.port, isUDP: false))
        if settings.admin.enabled, let listen = settings.admin.listen {
            out.append(Listener(key: "admin.listen", host: listen.host, port: listen.port, isUDP: false))
        }
        return out
    }

    /// The first listener that cannot be bound, with the reason; `nil` when all can.
    public static func firstFailure(_ listeners: [Listener]) -> String? {
        for listener in listeners where listener.port != 0 {
            if let reason = bindProblem(listener) {
                let transport = listener.isUDP ? "udp" : "tcp"
                let address = listener.host.contains(":") ? "[\(listener.host)]:\(listener.port)" : "\(listener.host):\(listener.port)"
                return "\(listener.key): cannot listen on \(address)/\(transport): \(reason)"
            }
        }
        return nil
    }

    private static func bindProblem(_ listener: Listener) -> String? {
        var storage = sockaddr_storage()
        /// Copies a concrete socket address into `storage`; returns its length.
        func store<Address>(_ address: Address) -> socklen_t {
            withUnsafeBytes(of: address) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) } }
            return socklen_t(MemoryLayout<Address>.size)
        }
        let length: socklen_t
        let family: Int32
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, listener.host, &v4) == 1 {
            family = AF_INET
            length = store(sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: listener.port.bigEndian, sin_addr: v4, sin_zero: (0, 0, 0, 0, 0, 0, 0, 0)))
        } else if inet_pton(AF_INET6, listener.host.trimmingBrackets, &v6) == 1 {
            family = AF_INET6
            length = store(sockaddr_in6(sin6_family: sa_family_t(AF_INET6), sin6_port: listener.port.bigEndian, sin6_flowinfo: 0, sin6_addr: v6, sin6_scope_id: 0))
        } else {
            return nil  // a host name: the service reports what its resolver says
        }
        let fd = socket(family, listener.isUDP ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        if !listener.isUDP {
            // As the real listeners do: TIME_WAIT leftovers of a previous run are no conflict.
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        let rv = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        return rv == 0 ? nil : String(cString: strerror(errno))
    }
}

private extension String {
    var trimmingBrackets: String {
        hasPrefix("[") && hasSuffix("]") ? String(dropFirst().dropLast()) : self
    }
}
