#if canImport(Glibc)
import Glibc
#endif
internal import CNGTCP2

/// Pre-allocated buffers for one `recvmmsg` call: packets, source addresses, iovecs and headers.
/// Allocated once per endpoint; receiving never allocates.
final class ReceiveBatch {
    /// Largest UDP payload accepted; anything longer is reported truncated and dropped.
    static let slotSize = 2048

    let capacity: Int
    private let buffers: UnsafeMutableRawPointer
    private let addresses: UnsafeMutablePointer<sockaddr_storage>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let messages: UnsafeMutablePointer<CNGTCP2_mmsghdr>

    init(capacity: Int) {
        self.capacity = capacity
        buffers = .allocate(byteCount: capacity * Self.slotSize, alignment: 16)
        addresses = .allocate(capacity: capacity)
        addresses.initialize(repeating: sockaddr_storage(), count: capacity)
        iovecs = .allocate(capacity: capacity)
        messages = .allocate(capacity: capacity)
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
    }

    /// Receives up to `capacity` packets without blocking. Returns how many arrived (0 when none).
    func receive(from fd: Int32) -> Int {
        for i in 0..<capacity {
            messages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            messages[i].msg_hdr.msg_flags = 0
            messages[i].msg_len = 0
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
}

/// Pre-allocated buffers for `sendmmsg`: packets are written straight into a slot by ngtcp2,
/// committed with their destination, and sent together when the batch is flushed or full.
final class SendBatch {
    /// Room for one QUIC packet (ngtcp2 writes at most `max_tx_udp_payload_size`, 1452 by default).
    static let slotSize = 1500

    let capacity: Int
    private(set) var count = 0
    private let buffers: UnsafeMutableRawPointer
    private let addresses: UnsafeMutablePointer<sockaddr_storage>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let messages: UnsafeMutablePointer<CNGTCP2_mmsghdr>
    /// Packets the kernel refused (send buffer full, unreachable): QUIC recovers them as losses.
    private(set) var sendFailures: UInt64 = 0
    /// Packets handed to the kernel.
    private(set) var packetsSent: UInt64 = 0

    init(capacity: Int) {
        self.capacity = capacity
        buffers = .allocate(byteCount: capacity * Self.slotSize, alignment: 16)
        addresses = .allocate(capacity: capacity)
        addresses.initialize(repeating: sockaddr_storage(), count: capacity)
        iovecs = .allocate(capacity: capacity)
        messages = .allocate(capacity: capacity)
        for i in 0..<capacity {
            iovecs[i] = iovec(iov_base: buffers + i * Self.slotSize, iov_len: 0)
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
    }

    var isFull: Bool { count == capacity }

    /// The buffer of the next free slot; valid until `commit` or `flush`.
    @inline(__always)
    var nextBuffer: UnsafeMutablePointer<UInt8> {
        (buffers + count * Self.slotSize).assumingMemoryBound(to: UInt8.self)
    }

    /// Marks the next slot as holding `length` bytes for `destination`.
    @inline(__always)
    func commit(length: Int, destination: UnsafePointer<sockaddr>, destinationLength: socklen_t) {
        let slot = count
        let size = min(Int(destinationLength), MemoryLayout<sockaddr_storage>.size)
        UnsafeMutableRawPointer(addresses + slot).copyMemory(from: destination, byteCount: size)
        messages[slot].msg_hdr.msg_namelen = socklen_t(size)
        iovecs[slot].iov_len = length
        count = slot + 1
    }

    /// Copies `bytes` into the next slot and commits it (for stateless replies).
    func append(_ bytes: UnsafeRawBufferPointer, destination: UnsafePointer<sockaddr>, destinationLength: socklen_t) {
        guard bytes.count <= Self.slotSize, let base = bytes.baseAddress else { return }
        UnsafeMutableRawPointer(nextBuffer).copyMemory(from: base, byteCount: bytes.count)
        commit(length: bytes.count, destination: destination, destinationLength: destinationLength)
    }

    /// Sends everything committed. A packet the kernel refuses is skipped and counted.
    func flush(to fd: Int32) {
        var start = 0
        while start < count {
            let n = CNGTCP2_sendmmsg(fd, messages + start, UInt32(count - start), 0)
            if n > 0 {
                start += Int(n)
                packetsSent &+= UInt64(n)
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                // The socket buffer is full: the rest is lost; congestion control will notice.
                sendFailures &+= UInt64(count - start)
                break
            }
            // This one packet failed (EMSGSIZE for an oversized probe, ECONNREFUSED, …): skip it.
            sendFailures &+= 1
            start += 1
        }
        count = 0
    }
}
