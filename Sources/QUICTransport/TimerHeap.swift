/// A binary min-heap of (deadline, connection handle). Entries are never removed early: a
/// connection remembers the deadline of its live entry and stale entries are skipped when they
/// surface. A connection whose deadline moves later keeps its earlier entry (it fires, finds
/// nothing due, and re-arms), so timers are not re-armed on every packet.
struct TimerHeap {
    struct Entry {
        var deadline: UInt64
        var handle: UInt64
    }

    private var entries: [Entry] = []

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }
    var earliest: UInt64? { entries.first?.deadline }

    mutating func push(deadline: UInt64, handle: UInt64) {
        entries.append(Entry(deadline: deadline, handle: handle))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if entries[parent].deadline <= entries[child].deadline { break }
            entries.swapAt(parent, child)
            child = parent
        }
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(now: UInt64) -> Entry? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        let last = entries.removeLast()
        if entries.isEmpty { return first }
        entries[0] = last
        var parent = 0
        let n = entries.count
        while true {
            let left = 2 * parent + 1
            if left >= n { break }
            let right = left + 1
            var smallest = left
            if right < n && entries[right].deadline < entries[left].deadline { smallest = right }
            if entries[parent].deadline <= entries[smallest].deadline { break }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }
}
