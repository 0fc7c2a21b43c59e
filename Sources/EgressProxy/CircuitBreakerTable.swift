/// Per-destination circuit breakers (DESIGN §12): `failureThreshold` consecutive dial failures
/// open a destination's circuit for `openDuration`; while open, requests fail at once; after
/// that one request is let through as a trial, and its outcome closes the circuit or opens it
/// again. Pure: time is a parameter.
///
/// ```
/// closed(n) --failure, n+1 == threshold--> open(until)
/// open(until) --admit at/after until--> trial --success--> closed(0)
///                                           \--failure--> open(now + openDuration)
/// ```
public struct CircuitBreakerTable<Key: Hashable & Sendable>: Sendable {
    /// What the breaker says about one request.
    public enum Admission: Hashable, Sendable {
        /// Go ahead (closed circuit).
        case allowed
        /// Go ahead: this request is the one trial of a circuit that was open.
        case trial
        /// Refuse at once.
        case open
    }

    enum State: Hashable, Sendable {
        /// Consecutive failures so far (below the threshold).
        case closed(failures: Int)
        /// Refusing until the instant.
        case open(until: ContinuousClock.Instant)
        /// The trial is in flight; others are refused until it reports.
        case trial
    }

    struct Record: Sendable {
        var state: State
        var touched: UInt64
    }

    public let failureThreshold: Int
    public let openDuration: Duration
    public let capacity: Int
    private var records: [Key: Record] = [:]
    private var clock: UInt64 = 0

    public init(failureThreshold: Int = ProxyDefaults.circuitFailureThreshold,
                openDuration: Duration = ProxyDefaults.circuitOpenDuration,
                capacity: Int = ProxyDefaults.circuitTableCapacity) {
        self.failureThreshold = max(1, failureThreshold)
        self.openDuration = openDuration
        self.capacity = max(1, capacity)
    }

    /// Asks whether a request to `key` may dial now.
    public mutating func admit(_ key: Key, now: ContinuousClock.Instant) -> Admission {
        guard var record = records[key] else { return .allowed }
        switch record.state {
        case .closed:
            return .allowed
        case .trial:
            return .open
        case .open(let until):
            guard now >= until else { return .open }
            clock &+= 1
            record.state = .trial
            record.touched = clock
            records[key] = record
            return .trial
        }
    }

    /// A dial to `key` succeeded: its circuit closes and its failures are forgotten.
    public mutating func recordSuccess(_ key: Key) {
        records[key] = nil
    }

    /// A dial to `key` failed. Returns `true` when this failure opened the circuit.
    @discardableResult
    public mutating func recordFailure(_ key: Key, now: ContinuousClock.Instant) -> Bool {
        clock &+= 1
        let next: State
        switch records[key]?.state ?? .closed(failures: 0) {
        case .closed(let failures):
            next = failures + 1 >= failureThreshold ? .open(until: now + openDuration) : .closed(failures: failures + 1)
        case .trial, .open:
            next = .open(until: now + openDuration)
        }
        if records[key] == nil, records.count >= capacity { evictOldest() }
        records[key] = Record(state: next, touched: clock)
        if case .open = next { return true }
        return false
    }

    /// A request admitted as a trial ended without a dial outcome (for example the stream
    /// was reset first): let the next request be the trial.
    public mutating func abandonTrial(_ key: Key, now: ContinuousClock.Instant) {
        if let record = records[key], record.state == .trial {
            records[key]?.state = .open(until: now)
        }
    }

    /// How many destinations refuse right now (open, or waiting on their trial).
    public func openCount(now: ContinuousClock.Instant) -> Int {
        records.values.reduce(0) { count, record in
            switch record.state {
            case .closed: return count
            case .trial: return count + 1
            case .open(let until): return until > now ? count + 1 : count
            }
        }
    }

    /// The number of destinations remembered (bounded by `capacity`).
    public var trackedCount: Int { records.count }

    private mutating func evictOldest() {
        // Prefer forgetting a closed record (a few failures) over an open circuit.
        let closed = records.filter { if case .closed = $0.value.state { return true } else { return false } }
        let pool = closed.isEmpty ? records : closed
        if let victim = pool.min(by: { $0.value.touched < $1.value.touched })?.key {
            records[victim] = nil
        }
    }
}
