/// Fixed-size byte slots shared by all connections of one endpoint, so queueing a datagram for
/// sending copies it once into memory that already exists: no allocation per datagram. The pool
/// grows in chunks up to `maxSlots` and never shrinks below what is in use.
final class DatagramSlabPool {
    static let slotSize = 1536
    private static let chunkSlots = 1024

    private var chunks: [UnsafeMutableRawPointer] = []
    private var free: [UInt32] = []
    let maxSlots: Int
    private(set) var inUse = 0

    init(maxSlots: Int) {
        self.maxSlots = maxSlots
    }

    deinit {
        for chunk in chunks { chunk.deallocate() }
    }

    /// A free slot, or `nil` when the pool is at its limit.
    @inline(__always)
    func acquire() -> UInt32? {
        if free.isEmpty {
            guard chunks.count * Self.chunkSlots < maxSlots else { return nil }
            let base = UInt32(chunks.count * Self.chunkSlots)
            chunks.append(.allocate(byteCount: Self.chunkSlots * Self.slotSize, alignment: 16))
            free.reserveCapacity(chunks.count * Self.chunkSlots)
            for i in (0..<UInt32(Self.chunkSlots)).reversed() { free.append(base + i) }
        }
        inUse += 1
        return free.removeLast()
    }

    @inline(__always)
    func release(_ slot: UInt32) {
        inUse -= 1
        free.append(slot)
    }

    @inline(__always)
    func pointer(_ slot: UInt32) -> UnsafeMutableRawPointer {
        let index = Int(slot)
        return chunks[index / Self.chunkSlots] + (index % Self.chunkSlots) * Self.slotSize
    }
}

/// A connection's bounded FIFO of datagrams waiting for congestion control or pacing.
/// Entries point into the endpoint's `DatagramSlabPool`; the ring is allocated on first use.
struct DatagramQueue {
    struct Entry {
        var slot: UInt32
        var length: UInt16
        var enqueuedAt: UInt64
    }

    private var ring: [Entry] = []
    private var head = 0
    /// `enqueuedAt` of the last append (loop nanoseconds).
    private var lastAppendAt: UInt64 = 0
    private(set) var count = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count == capacity }

    var first: Entry? { count == 0 ? nil : ring[head] }

    /// Appends an entry; the caller has checked `isFull`.
    mutating func append(_ entry: Entry) {
        if ring.isEmpty {
            ring = Array(repeating: Entry(slot: 0, length: 0, enqueuedAt: 0), count: capacity)
        }
        ring[(head + count) % capacity] = entry
        count += 1
        lastAppendAt = entry.enqueuedAt
    }

    mutating func removeFirst() -> Entry? {
        guard count > 0 else { return nil }
        let entry = ring[head]
        head = (head + 1) % capacity
        count -= 1
        return entry
    }

    /// Frees the ring when it has been empty and unused for `idle` nanoseconds: idle
    /// connections cost little memory, and a busy one that drains its queue between two
    /// datagrams does not allocate the ring again for each (issue 18: that was a malloc per
    /// queued datagram with 100 allocations).
    mutating func shrinkIfIdle(now: UInt64, idle: UInt64) {
        if count == 0, !ring.isEmpty, now &- lastAppendAt >= idle { shrinkIfEmpty() }
    }

    /// Frees the ring when empty.
    mutating func shrinkIfEmpty() {
        if count == 0, !ring.isEmpty {
            ring = []
            head = 0
        }
    }
}
