#if canImport(Glibc)
import Glibc
#endif
internal import CNGTCP2

/// Pre-allocated buffers for one `recvmmsg` call: packets, source addresses, iovecs and headers
/// (and, when the socket reports destinations, control buffers and destination addresses).
/// Allocated once per endpoint; receiving never allocates.
final class ReceiveBatch {
    /// Largest UDP payload accepted; anything longer is reported truncated and dropped.
    static let slotSize = 2048

    let capacity: Int
    private let buffers: UnsafeMutableRawPointer
    private let addresses: UnsafeMutablePointer<sockaddr_storage>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let messages: UnsafeMutablePointer<CNGTCP2_mmsghdr>
    /// Destination-address reporting: the socket's family and port, control buffers, and the
    /// decoded destinations. `nil` when the socket does not report destinations.
    private let destinations: (family: Int32, port: UInt16, controls: UnsafeMutableRawPointer, controlSpace: Int,
                               addresses: UnsafeMutablePointer<sockaddr_storage>)?

    /// `destinationsOf`: the bound address of a socket that reports each packet's destination.
    init(capacity: Int, destinationsOf bound: TransportAddress? = nil) {
        self.capacity = capacity
        buffers = .allocate(byteCount: capacity * Self.slotSize, alignment: 16)
        addresses = .allocate(capacity: capacity)
        addresses.initialize(repeating: sockaddr_storage(), count: capacity)
        iovecs = .allocate(capacity: capacity)
        messages = .allocate(capacity: capacity)
        if let bound {
            let space = CNGTCP2_receive_cmsg_space()
            let controls = UnsafeMutableRawPointer.allocate(byteCount: capacity * space, alignment: 16)
            controls.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * space)
            let locals = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: capacity)
            locals.initialize(repeating: sockaddr_storage(), count: capacity)
            destinations = (bound.family, bound.port, controls, space, locals)
        } else {
            destinations = nil
        }
        for i in 0..<capacity {
            iovecs[i] = iovec(iov_base: buffers + i * Self.slotSize, iov_len: Self.slotSize)
            var header = CNGTCP2_mmsghdr()
            header.msg_hdr.msg_name = UnsafeMutableRawPointer(addresses + i)
            header.msg_hdr.msg_iov = iovecs + i
            header.msg_hdr.msg_iovlen = 1
            messages[i] = header
        }
    }

    deinit {
        buffers.deallocate()
        addresses.deallocate()
        iovecs.deallocate()
        messages.deallocate()
        if let destinations {
            destinations.controls.deallocate()
            destinations.addresses.deallocate()
        }
    }

    /// Receives up to `capacity` packets without blocking. Returns how many arrived (0 when none).
    func receive(from fd: Int32) -> Int {
        for i in 0..<capacity {
            messages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            messages[i].msg_hdr.msg_flags = 0
            messages[i].msg_len = 0
            if let destinations {
                // The kernel shortens msg_controllen to what it wrote: restore it every time.
                messages[i].msg_hdr.msg_control = destinations.controls + i * destinations.controlSpace
                messages[i].msg_hdr.msg_controllen = destinations.controlSpace
            }
        }
        while true {
            let n = CNGTCP2_recvmmsg(fd, messages, UInt32(capacity), Int32(MSG_DONTWAIT))
            if n >= 0 { return Int(n) }
            if errno == EINTR { continue }
            return 0
        }
    }

    /// The packet in slot `index`: bytes, length, source address; `truncated` if it did not fit.
    @inline(__always)
    func packet(at index: Int) -> (bytes: UnsafeMutablePointer<UInt8>, length: Int, source: UnsafeMutablePointer<sockaddr>, sourceLength: socklen_t, truncated: Bool) {
        let header = messages[index]
        let bytes = (buffers + index * Self.slotSize).assumingMemoryBound(to: UInt8.self)
        let source = UnsafeMutableRawPointer(addresses + index).assumingMemoryBound(to: sockaddr.self)
        let truncated = (header.msg_hdr.msg_flags & Int32(MSG_TRUNC)) != 0
        return (bytes, Int(header.msg_len), source, header.msg_hdr.msg_namelen, truncated)
    }

    /// The local address the packet in slot `index` arrived on, when the socket reports it.
    @inline(__always)
    func destination(at index: Int) -> (address: UnsafeMutablePointer<sockaddr>, length: socklen_t)? {
        guard let destinations else { return nil }
        let storage = destinations.addresses + index
        let length = withUnsafePointer(to: &messages[index].msg_hdr) {
            CNGTCP2_read_destination_address($0, destinations.family, destinations.port, storage)
        }
        guard length > 0 else { return nil }
        return (UnsafeMutableRawPointer(storage).assumingMemoryBound(to: sockaddr.self), length)
    }
}

/// Pre-allocated buffers for `sendmmsg`: packets are written straight into a slot by ngtcp2,
/// committed with their destination, and sent together when the batch is flushed or full.
///
/// With UDP GSO (`segmentationOffload`), consecutive packets to the same destination whose
/// sizes allow it (all equal, the last one no larger) leave as one `UDP_SEGMENT` message: the
/// kernel walks its send path once for the group and cuts it into datagrams afterwards. The
/// slots' iovecs are consecutive, so a group is simply a message with several iovecs.
///
/// With `namesSource` (a wildcard-bound server socket), each packet also names its source
/// address (IP_PKTINFO / IPV6_PKTINFO): replies leave from the address the peer reached.
final class SendBatch {
    /// Room for one QUIC packet (ngtcp2 writes at most `max_tx_udp_payload_size`, 1452 by default).
    static let slotSize = 1500
    /// The kernel's limit on segments in one GSO send (UDP_MAX_SEGMENTS).
    static let maximumSegments = 64
    /// The largest UDP payload of one GSO send.
    static let maximumGroupBytes = 65_000

    let capacity: Int
    private(set) var count = 0
    private let buffers: UnsafeMutableRawPointer
    private let addresses: UnsafeMutablePointer<sockaddr_storage>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let messages: UnsafeMutablePointer<CNGTCP2_mmsghdr>
    /// One message per GSO group, with its control buffer (used only with GSO).
    private let groups: UnsafeMutablePointer<CNGTCP2_mmsghdr>
    private let groupSlotCounts: UnsafeMutablePointer<Int>
    private let groupControls: UnsafeMutableRawPointer
    /// Per slot: its control buffer and its source address (with `namesSource`).
    private let slotControls: UnsafeMutableRawPointer
    private let sources: UnsafeMutablePointer<sockaddr_storage>
    private let sourceLengths: UnsafeMutablePointer<socklen_t>
    private let controlSpace: Int
    /// Whether packets name their source address.
    let namesSource: Bool
    /// Whether to group packets with UDP GSO; turned off for good if the kernel refuses it.
    private(set) var segmentationOffload: Bool
    /// Packets the kernel refused (send buffer full, unreachable): QUIC recovers them as losses.
    private(set) var sendFailures: UInt64 = 0
    /// Packets handed to the kernel.
    private(set) var packetsSent: UInt64 = 0

    init(capacity: Int, segmentationOffload: Bool = false, namesSource: Bool = false) {
        self.capacity = capacity
        self.segmentationOffload = segmentationOffload
        self.namesSource = namesSource
        buffers = .allocate(byteCount: capacity * Self.slotSize, alignment: 16)
        addresses = .allocate(capacity: capacity)
        addresses.initialize(repeating: sockaddr_storage(), count: capacity)
        iovecs = .allocate(capacity: capacity)
        messages = .allocate(capacity: capacity)
        groups = .allocate(capacity: capacity)
        groupSlotCounts = .allocate(capacity: capacity)
        controlSpace = CNGTCP2_send_cmsg_space()
        groupControls = .allocate(byteCount: capacity * controlSpace, alignment: 16)
        groupControls.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * controlSpace)
        slotControls = .allocate(byteCount: capacity * controlSpace, alignment: 16)
        slotControls.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * controlSpace)
        sources = .allocate(capacity: capacity)
        sources.initialize(repeating: sockaddr_storage(), count: capacity)
        sourceLengths = .allocate(capacity: capacity)
        sourceLengths.initialize(repeating: 0, count: capacity)
        for i in 0..<capacity {
            iovecs[i] = iovec(iov_base: buffers + i * Self.slotSize, iov_len: 0)
            var header = CNGTCP2_mmsghdr()
            header.msg_hdr.msg_name = UnsafeMutableRawPointer(addresses + i)
            header.msg_hdr.msg_iov = iovecs + i
            header.msg_hdr.msg_iovlen = 1
            messages[i] = header
            groups[i] = CNGTCP2_mmsghdr()
        }
    }

    deinit {
        buffers.deallocate()
        addresses.deallocate()
        iovecs.deallocate()
        messages.deallocate()
        groups.deallocate()
        groupSlotCounts.deallocate()
        groupControls.deallocate()
        slotControls.deallocate()
        sources.deallocate()
        sourceLengths.deallocate()
    }

    var isFull: Bool { count == capacity }

    /// The buffer of the next free slot; valid until `commit` or `flush`.
    @inline(__always)
    var nextBuffer: UnsafeMutablePointer<UInt8> {
        (buffers + count * Self.slotSize).assumingMemoryBound(to: UInt8.self)
    }

    /// Marks the next slot as holding `length` bytes for `destination`, leaving from `source`
    /// (used only with `namesSource`; a wildcard source lets the kernel choose).
    @inline(__always)
    func commit(length: Int, destination: UnsafePointer<sockaddr>, destinationLength: socklen_t,
                source: UnsafePointer<sockaddr>? = nil, sourceLength: socklen_t = 0) {
        let slot = count
        let size = min(Int(destinationLength), MemoryLayout<sockaddr_storage>.size)
        UnsafeMutableRawPointer(addresses + slot).copyMemory(from: destination, byteCount: size)
        messages[slot].msg_hdr.msg_namelen = socklen_t(size)
        iovecs[slot].iov_len = length
        if namesSource {
            let sourceSize = source == nil ? 0 : min(Int(sourceLength), MemoryLayout<sockaddr_storage>.size)
            if let source, sourceSize > 0 {
                UnsafeMutableRawPointer(sources + slot).copyMemory(from: source, byteCount: sourceSize)
            }
            sourceLengths[slot] = socklen_t(sourceSize)
            let named = sourceSize > 0 ? UnsafeRawPointer(sources + slot).assumingMemoryBound(to: sockaddr.self) : nil
            withUnsafeMutablePointer(to: &messages[slot].msg_hdr) {
                CNGTCP2_write_send_cmsgs($0, slotControls + slot * controlSpace, 0, named)
            }
        }
        count = slot + 1
    }

    /// Copies `bytes` into the next slot and commits it (for stateless replies).
    func append(_ bytes: UnsafeRawBufferPointer, destination: UnsafePointer<sockaddr>, destinationLength: socklen_t,
                source: UnsafePointer<sockaddr>? = nil, sourceLength: socklen_t = 0) {
        guard bytes.count <= Self.slotSize, let base = bytes.baseAddress else { return }
        UnsafeMutableRawPointer(nextBuffer).copyMemory(from: base, byteCount: bytes.count)
        commit(length: bytes.count, destination: destination, destinationLength: destinationLength,
               source: source, sourceLength: sourceLength)
    }

    /// Sends everything committed. A packet the kernel refuses is skipped and counted.
    func flush(to fd: Int32) {
        if segmentationOffload, count > 1 {
            flushGrouped(to: fd)
        } else {
            send(messages, count: count, slotsPerMessage: nil, to: fd)
        }
        count = 0
    }

    /// Whether slot `b` goes to the same address as slot `a` (and from the same one).
    @inline(__always)
    private func sameDestination(_ a: Int, _ b: Int) -> Bool {
        let length = messages[a].msg_hdr.msg_namelen
        guard messages[b].msg_hdr.msg_namelen == length, memcmp(addresses + a, addresses + b, Int(length)) == 0 else { return false }
        guard namesSource else { return true }
        let sourceLength = sourceLengths[a]
        return sourceLengths[b] == sourceLength && memcmp(sources + a, sources + b, Int(sourceLength)) == 0
    }

    /// Builds the GSO groups, then sends them.
    private func flushGrouped(to fd: Int32) {
        var groupCount = 0
        var start = 0
        while start < count {
            let segmentSize = iovecs[start].iov_len
            var end = start + 1
            var bytes = segmentSize
            // Extend while every earlier segment is exactly `segmentSize` and this one is no larger.
            while end < count, end - start < Self.maximumSegments, sameDestination(start, end),
                  iovecs[end - 1].iov_len == segmentSize, iovecs[end].iov_len <= segmentSize,
                  bytes + iovecs[end].iov_len <= Self.maximumGroupBytes {
                bytes += iovecs[end].iov_len
                end += 1
            }
            var header = messages[start]
            header.msg_hdr.msg_iov = iovecs + start
            header.msg_hdr.msg_iovlen = end - start
            if end - start > 1 {
                let source = namesSource && sourceLengths[start] > 0
                    ? UnsafeRawPointer(sources + start).assumingMemoryBound(to: sockaddr.self) : nil
                withUnsafeMutablePointer(to: &header.msg_hdr) {
                    CNGTCP2_write_send_cmsgs($0, groupControls + groupCount * controlSpace, UInt16(segmentSize), source)
                }
            } else if !namesSource {
                header.msg_hdr.msg_control = nil
                header.msg_hdr.msg_controllen = 0
            }
            groups[groupCount] = header
            groupSlotCounts[groupCount] = end - start
            groupCount += 1
            start = end
        }
        send(groups, count: groupCount, slotsPerMessage: groupSlotCounts, to: fd)
    }

    /// `sendmmsg` over `count` messages; failures are counted in packets (slots).
    private func send(_ vector: UnsafeMutablePointer<CNGTCP2_mmsghdr>, count: Int,
                      slotsPerMessage: UnsafeMutablePointer<Int>?, to fd: Int32) {
        func slots(_ range: Range<Int>) -> UInt64 {
            guard let slotsPerMessage else { return UInt64(range.count) }
            var total = 0
            for i in range { total += slotsPerMessage[i] }
            return UInt64(total)
        }
        var start = 0
        while start < count {
            let n = CNGTCP2_sendmmsg(fd, vector + start, UInt32(count - start), 0)
            if n > 0 {
                packetsSent &+= slots(start..<start + Int(n))
                start += Int(n)
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                // The socket buffer is full: the rest is lost; congestion control will notice.
                sendFailures &+= slots(start..<count)
                break
            }
            if n < 0, slotsPerMessage != nil, vector[start].msg_hdr.msg_iovlen > 1, errno == EIO || errno == EINVAL {
                // The device cannot segment (no checksum offload): stop using GSO.
                segmentationOffload = false
            }
            // This one message failed (EMSGSIZE for an oversized probe, ECONNREFUSED, …): skip it.
            sendFailures &+= slots(start..<start + 1)
            start += 1
        }
    }
}
