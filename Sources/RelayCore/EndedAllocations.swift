/// The ids of ended allocations, each remembered until the latest expiry of any token seen
/// for it (ALLOCATE for one gets `allocation_ended`, DESIGN §5), in bounded memory: beyond
/// `capacity` the oldest ended id is forgotten first and counted (``forgottenCount``).
///
/// Pure: time (Unix seconds) is a parameter.
public struct EndedAllocations: Sendable {
    /// The most ids remembered (raising it keeps what is remembered; it is never lowered
    /// below what is needed for live traffic by the table).
    public var capacity: Int {
        didSet { capacity = max(1, capacity) }
    }
    /// Ids forgotten early because the memory was full (a metric).
    public private(set) var forgottenCount: UInt64 = 0
    private var until: [AllocationID: (expiry: UInt64, sequence: UInt64)] = [:]
    /// Ids in the order they ended, with the sequence number they ended under (an id that
    /// ends again gets a new entry; the old one is skipped).
    private var order: [(id: AllocationID, sequence: UInt64)] = []
    private var head = 0
    private var nextSequence: UInt64 = 0
    private var lastSweep: UInt64 = 0

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Ids remembered now.
    public var count: Int { until.count }

    /// Remembers `id` until `expiry` (Unix seconds); a later expiry extends it.
    public mutating func insert(_ id: AllocationID, until expiry: UInt64) {
        let kept = until[id].map { max($0.expiry, expiry) } ?? expiry
        nextSequence &+= 1
        until[id] = (kept, nextSequence)
        order.append((id, nextSequence))
        while until.count > capacity, let oldest = popOldest() {
            until[oldest] = nil
            forgottenCount &+= 1
        }
        compactOrder()
    }

    /// Whether `id` is remembered as ended at `nowUnix` (an expired entry is dropped).
    public mutating func contains(_ id: AllocationID, nowUnix: UInt64) -> Bool {
        guard let entry = until[id] else { return false }
        if entry.expiry > nowUnix { return true }
        until[id] = nil
        return false
    }

    /// Whether `id` is remembered (expired or not).
    public func remembers(_ id: AllocationID) -> Bool { until[id] != nil }

    /// Until when `id` is remembered, if it is.
    public func expiry(of id: AllocationID) -> UInt64? { until[id]?.expiry }

    /// Drops entries whose expiry passed; cheap to call often (sweeps at most once a second).
    public mutating func forgetExpired(nowUnix: UInt64) {
        guard nowUnix != lastSweep else { return }
        lastSweep = nowUnix
        until = until.filter { $0.value.expiry > nowUnix }
        compactOrder()
    }

    /// The oldest id whose entry is still the live one.
    private mutating func popOldest() -> AllocationID? {
        while head < order.count {
            let entry = order[head]
            head += 1
            if until[entry.id]?.sequence == entry.sequence { return entry.id }
        }
        return nil
    }

    private mutating func compactOrder() {
        // Stale entries (re-ended or expired ids) are skipped lazily; drop the consumed prefix
        // and, when most of the list is stale, rebuild it.
        if head > 1024, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
        if order.count - head > 2 * max(until.count, 512) {
            order = order[head...].filter { until[$0.id]?.sequence == $0.sequence }
            head = 0
        }
    }
}
