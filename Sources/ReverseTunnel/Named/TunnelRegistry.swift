/// Which client serves which name (DESIGN §11). Pure: time is passed in.
///
/// A name is in one of three states:
/// ```
///            claim                    release (client gone)
///   free ───────────▶ active(client) ───────────────────────▶ held(token, until)
///                      ▲   │ claim by a newer client               │   │
///                      │   └──▶ active(newer), older replaced      │   │ expire(now ≥ until)
///                      └───── claim with the same token ◀──────────┘   ▼
///                                                                     free
/// ```
/// - *active*: a client serves it; a newer authorised client for the name replaces it
///   (the caller tells the old one `REPLACED`).
/// - *held*: its client vanished; for ``Configuration/holdDuration`` only a client with the
///   same token may take it (routing answers 502), then it is freed.
/// - *free*: not in the table (routing answers 404 unless the name is reserved, i.e. listed in
///   the tokens file, which answers 502).
public struct TunnelRegistry<ClientID: Hashable & Sendable>: Sendable {
    /// Timers of the registry.
    public struct Configuration: Sendable {
        /// How long a vanished client's name stays reserved for it (DESIGN §11: 30 s).
        public var holdDuration: Duration = NamedTunnelDefaults.holdDuration
        public init() {}
    }

    enum Entry: Sendable {
        /// A client serves the name.
        case active(client: ClientID, token: [UInt8]?)
        /// The client vanished; the name waits for the same token until `until`.
        case held(token: [UInt8]?, until: ContinuousClock.Instant)
    }

    /// The outcome of a claim.
    public enum ClaimResult: Equatable, Sendable {
        /// The client now serves the name; `replaced` is the older client it takes over from.
        case accepted(replaced: ClientID?)
        /// The name is held for another token.
        case denied(String)
    }

    /// Where a request for a name goes.
    public enum Route: Equatable, Sendable {
        case client(ClientID)
        /// A known name without a client (held, or reserved in the tokens file): 502.
        case noClient
        /// Nobody has or had this name: 404.
        case unknown
    }

    /// The outcome of a client's departure.
    public enum ReleaseResult: Equatable, Sendable {
        /// The client served the name; it is held until the instant.
        case held(until: ContinuousClock.Instant)
        /// The client was not (or no longer) the name's client: nothing changed.
        case notCurrent
    }

    private var entries: [TunnelName: Entry] = [:]
    private let reserved: Set<TunnelName>
    private let configuration: Configuration

    /// - Parameters:
    ///   - reservedNames: Names that route to 502 rather than 404 when nobody serves them.
    ///   - configuration: Timers.
    public init(reservedNames: Set<TunnelName> = [], configuration: Configuration = Configuration()) {
        self.reserved = reservedNames
        self.configuration = configuration
    }

    /// A client (already authorised for `name` by the tokens) asks to serve `name`.
    public mutating func claim(_ name: TunnelName, token: [UInt8]?, client: ClientID, now: ContinuousClock.Instant) -> ClaimResult {
        expire(now: now)
        switch entries[name] {
        case nil:
            entries[name] = .active(client: client, token: token)
            return .accepted(replaced: nil)
        case .active(let older, _):
            entries[name] = .active(client: client, token: token)
            return .accepted(replaced: older == client ? nil : older)
        case .held(let heldToken, _):
            guard Self.sameToken(heldToken, token) else { return .denied("name held for its previous client") }
            entries[name] = .active(client: client, token: token)
            return .accepted(replaced: nil)
        }
    }

    /// The client serving `name` is gone (its session ended without being replaced).
    public mutating func release(_ name: TunnelName, client: ClientID, now: ContinuousClock.Instant) -> ReleaseResult {
        guard case .active(let current, let token) = entries[name], current == client else { return .notCurrent }
        let (until, overflow) = Self.adding(configuration.holdDuration, to: now)
        entries[name] = overflow ? nil : .held(token: token, until: until)
        return overflow ? .notCurrent : .held(until: until)
    }

    /// Where a request for `name` goes now.
    public func route(_ name: TunnelName, now: ContinuousClock.Instant) -> Route {
        switch entries[name] {
        case .active(let client, _): return .client(client)
        case .held(_, let until): return now < until || reserved.contains(name) ? .noClient : .unknown
        case nil: return reserved.contains(name) ? .noClient : .unknown
        }
    }

    /// Whether `name` may not be given out as a random name (in use, held or reserved).
    public func isTaken(_ name: TunnelName, now: ContinuousClock.Instant) -> Bool {
        if reserved.contains(name) { return true }
        switch entries[name] {
        case .active: return true
        case .held(_, let until): return now < until
        case nil: return false
        }
    }

    /// Frees every held name whose time is up; returns them (for the log).
    @discardableResult
    public mutating func expire(now: ContinuousClock.Instant) -> [TunnelName] {
        var freed: [TunnelName] = []
        for (name, entry) in entries {
            if case .held(_, let until) = entry, now >= until { freed.append(name) }
        }
        for name in freed { entries[name] = nil }
        return freed.sorted { $0.rawValue < $1.rawValue }
    }

    /// The number of names with a client.
    public var activeCount: Int {
        entries.values.reduce(0) { count, entry in
            if case .active = entry { return count + 1 }
            return count
        }
    }

    /// The earliest instant a held name expires, for the sweep timer.
    public var nextExpiry: ContinuousClock.Instant? {
        entries.values.compactMap { entry -> ContinuousClock.Instant? in
            if case .held(_, let until) = entry { return until }
            return nil
        }.min()
    }

    private static func sameToken(_ a: [UInt8]?, _ b: [UInt8]?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case (let a?, let b?): return TunnelHello.constantTimeEqual(a, b)
        default: return false
        }
    }

    private static func adding(_ duration: Duration, to instant: ContinuousClock.Instant) -> (ContinuousClock.Instant, Bool) {
        // Durations here come from our configuration, never the network; still no trap.
        guard duration < .seconds(Int64.max / 4) else { return (instant, true) }
        return (instant.advanced(by: duration), false)
    }
}
