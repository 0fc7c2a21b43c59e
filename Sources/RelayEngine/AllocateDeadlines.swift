import RelayCore

/// Connections that must send ALLOCATE before a deadline (DESIGN §6: every listener times out
/// whoever never authenticates). All connections get the same grace, so deadlines arrive in
/// connection order and a FIFO suffices: O(1) to add, O(expired) per tick.
struct AllocateDeadlines {
    /// How long a connection may stay without an allocation.
    let grace: Duration
    private var entries: [(handle: ConnectionHandle, deadline: RelayInstant)] = []
    private var head = 0

    init(grace: Duration) {
        self.grace = grace
    }

    /// The number of connections still being watched (expired or not).
    var count: Int { entries.count - head }

    /// Starts watching a connection that was accepted at `now`.
    mutating func watch(_ handle: ConnectionHandle, now: RelayInstant) {
        entries.append((handle, now.advanced(by: grace)))
    }

    /// Removes and returns the connections whose deadline has passed at `now`, oldest first.
    /// The caller checks whether each still lacks an allocation.
    mutating func expired(now: RelayInstant) -> [ConnectionHandle] {
        var due: [ConnectionHandle] = []
        while head < entries.count, entries[head].deadline <= now {
            due.append(entries[head].handle)
            head += 1
        }
        if head > 1024, head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return due
    }
}
