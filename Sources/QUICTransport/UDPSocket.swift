#if canImport(Glibc)
import Glibc
#endif
internal import CNGTCP2

/// A non-blocking UDP socket bound to one local address.
final class UDPSocket {
    let fd: Int32
    /// The bound address (with the kernel-chosen port when 0 was asked for).
    let localAddress: TransportAddress
    /// Whether UDP_SEGMENT (GSO) is usable on this socket.
    let supportsSegmentationOffload: Bool
    /// Whether each received packet reports the local address it arrived on (and sends name
    /// their source address): asked for with `reportDestination` on a wildcard bind.
    let reportsDestinationAddress: Bool

    /// Binds `address`. With `reportDestination` and a wildcard address, the kernel reports
    /// each packet's destination (IP_PKTINFO / IPV6_RECVPKTINFO), so replies can leave from
    /// the address the peer reached.
    init(binding address: TransportAddress, reportDestination: Bool = false) throws(QUICTransportError) {
        let fd = socket(address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(.socket, "socket") }
        // No SO_REUSEADDR: on Linux it would let a second process bind the same UDP port and
        // take part of its traffic; UDP has no TIME_WAIT to wait out.
        var buffer: Int32 = 8 * 1024 * 1024
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, socklen_t(MemoryLayout<Int32>.size))
        if address.family == AF_INET6 {
            var zero: Int32 = 0
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
        }
        // Don't fragment: PMTUD needs oversized probes to be lost, not fragmented.
        if address.family == AF_INET {
            var pmtu: Int32 = IP_PMTUDISC_PROBE
            setsockopt(fd, Int32(IPPROTO_IP), IP_MTU_DISCOVER, &pmtu, socklen_t(MemoryLayout<Int32>.size))
        } else {
            var pmtu: Int32 = IPV6_PMTUDISC_PROBE
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_MTU_DISCOVER, &pmtu, socklen_t(MemoryLayout<Int32>.size))
        }
        let storage = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
        defer { storage.deallocate() }
        let length = address.write(to: storage)
        let bound = storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        guard bound == 0 else {
            let error = QUICTransportError.system(.bind, "bind \(address)")
            close(fd)
            throw error
        }
        var actualLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &actualLength) }
        guard named == 0,
              let actual = storage.withMemoryRebound(to: sockaddr.self, capacity: 1, { TransportAddress(sockaddr: $0, length: actualLength) })
        else {
            let error = QUICTransportError.system(.bind, "getsockname")
            close(fd)
            throw error
        }
        self.fd = fd
        self.localAddress = actual
        self.supportsSegmentationOffload = CNGTCP2_probe_gso(fd) != 0
        self.reportsDestinationAddress = reportDestination && address.isWildcard
            && CNGTCP2_enable_destination_address(fd, address.family) == 0
    }

    deinit {
        close(fd)
    }
}
