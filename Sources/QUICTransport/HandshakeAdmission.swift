/// Decides what happens to each client Initial that would create a connection: accept it,
/// demand address validation with a Retry, or refuse it statelessly (CONNECTION_REFUSED).
///
/// Pure: time is a parameter (CLOCK_MONOTONIC nanoseconds), no I/O. The endpoint asks once
/// per new-connection Initial, after the block/allow lists and per-IP limits.
///
/// Rules (DESIGN §6 v3, `quic.retry`, `security.accept_rate`):
/// 1. An Initial without a valid Retry token under `always` gets a Retry (not a rate hit).
/// 2. Under `auto`, it gets a Retry while new Initials in the current second exceed the accept
///    rate, or while `autoRetryHalfOpenThreshold` or more handshakes are incomplete: a flood of
///    handshakes that are never completed (or come from spoofed addresses) then costs one
///    stateless packet each and no connection state.
/// 3. Whatever the mode, a connection is created only while fewer than `acceptRate`
///    connections were created in the current second and fewer than `maximumHalfOpen`
///    handshakes are incomplete; otherwise the Initial is refused.
/// Retries sent by rule 2 and refusals by rule 3 are "accept" rate-limit hits.
struct HandshakeAdmission: Sendable {
    /// The answer for one Initial.
    enum Decision: Sendable, Hashable {
        /// Create the connection.
        case accept
        /// Send a Retry; `rateLimited` when the accept rate or the half-open load caused it.
        case retry(rateLimited: Bool)
        /// Refuse statelessly (the accept rate or the half-open cap is reached).
        case refuse
    }

    /// `quic.retry`.
    enum Mode: Sendable, Hashable { case never, always, auto }

    let mode: Mode
    /// Connections created per second, all sources; 0 = no limit.
    let acceptRate: Int
    /// Incomplete handshakes at once, all sources; beyond it new ones are refused.
    let maximumHalfOpen: Int
    /// Under `auto`: from this many incomplete handshakes on, unvalidated Initials get a Retry.
    let autoRetryHalfOpenThreshold: Int

    private var windowStart: UInt64 = 0
    private var initialsInWindow = 0
    private var acceptedInWindow = 0

    init(mode: Mode, acceptRate: Int, maximumHalfOpen: Int, autoRetryHalfOpenThreshold: Int) {
        self.mode = mode
        self.acceptRate = max(0, acceptRate)
        self.maximumHalfOpen = max(1, maximumHalfOpen)
        self.autoRetryHalfOpenThreshold = max(1, autoRetryHalfOpenThreshold)
    }

    /// Decides about one Initial.
    /// - Parameters:
    ///   - validated: It carried a Retry token that verified (the address is proven).
    ///   - halfOpen: Handshakes in progress now.
    ///   - now: Monotonic nanoseconds.
    mutating func decide(validated: Bool, halfOpen: Int, now: UInt64) -> Decision {
        if now &- windowStart >= 1_000_000_000 || now < windowStart {
            windowStart = now
            initialsInWindow = 0
            acceptedInWindow = 0
        }
        initialsInWindow &+= 1
        if !validated {
            switch mode {
            case .always:
                return .retry(rateLimited: false)
            case .auto:
                let overRate = acceptRate > 0 && initialsInWindow > acceptRate
                if overRate || halfOpen >= autoRetryHalfOpenThreshold { return .retry(rateLimited: true) }
            case .never:
                break
            }
        }
        if (acceptRate > 0 && acceptedInWindow >= acceptRate) || halfOpen >= maximumHalfOpen {
            return .refuse
        }
        acceptedInWindow += 1
        return .accept
    }
}
