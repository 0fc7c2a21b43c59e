/// The lifecycle of one yamux stream (hashicorp/yamux `spec.md`, "Opening a stream" and
/// "Closing a stream").
///
/// ```
/// idle ──sendSYN──▶ synSent ──receiveACK──▶ established
/// idle ──receiveSYN──▶ synReceived ──sendACK──▶ established
/// synSent/synReceived/established ──sendFIN──▶ localClosed ──receiveFIN──▶ closed
/// synSent/synReceived/established ──receiveFIN──▶ remoteClosed ──sendFIN──▶ closed
/// any ──RST sent or received──▶ reset
/// ```
///
/// Whether we still owe the peer an ACK is tracked beside the state: a peer may half-close
/// a stream before the application accepted it, and the ACK must still be sent then.
struct YamuxStreamStateMachine: Hashable, Sendable {
    /// The states of a stream.
    enum State: Hashable, Sendable {
        /// Created, nothing sent or received yet.
        case idle
        /// We sent SYN and the peer has not acknowledged it; both directions are open.
        case synSent
        /// The peer sent SYN and we have not acknowledged it; both directions are open.
        case synReceived
        /// Opened and acknowledged; both directions are open.
        case established
        /// We sent FIN: we send no more data, the peer still may.
        case localClosed
        /// The peer sent FIN: it sends no more data, we still may.
        case remoteClosed
        /// Both sides sent FIN. Terminal.
        case closed
        /// A RST was sent or received. Terminal.
        case reset
    }

    /// The current state.
    private(set) var state: State = .idle

    /// Whether the peer's SYN still awaits our ACK.
    private(set) var acknowledgementPending = false

    /// What receiving a FIN did.
    enum ReceiveFINResult: Hashable, Sendable {
        /// The peer's direction is closed; ours is still open.
        case halfClosed
        /// Both directions are closed now.
        case closed
    }

    /// What sending a FIN does.
    enum SendFINResult: Hashable, Sendable {
        /// Send FIN; the peer's direction is still open.
        case halfClosed
        /// Send FIN; both directions are closed now.
        case closed
        /// Our direction was already closed: send nothing.
        case alreadyClosed
    }

    /// Whether Data from the peer is acceptable now.
    var mayReceiveData: Bool {
        switch self.state {
        case .synSent, .synReceived, .established, .localClosed: return true
        case .idle, .remoteClosed, .closed, .reset: return false
        }
    }

    /// Whether we may send Data now.
    var maySendData: Bool {
        switch self.state {
        case .synSent, .synReceived, .established, .remoteClosed: return true
        case .idle, .localClosed, .closed, .reset: return false
        }
    }

    /// We open the stream. Only valid in `idle`.
    mutating func sendSYN() {
        switch self.state {
        case .idle:
            self.state = .synSent
        case .synSent, .synReceived, .established, .localClosed, .remoteClosed, .closed, .reset:
            assertionFailure("sendSYN in state \(self.state)")
        }
    }

    /// The peer opens the stream. Only valid in `idle`.
    mutating func receiveSYN() {
        switch self.state {
        case .idle:
            self.state = .synReceived
            self.acknowledgementPending = true
        case .synSent, .synReceived, .established, .localClosed, .remoteClosed, .closed, .reset:
            assertionFailure("receiveSYN in state \(self.state)")
        }
    }

    /// We acknowledge the peer's SYN.
    /// - Returns: `true` when an ACK was due (and is now considered sent).
    mutating func sendACK() -> Bool {
        guard self.acknowledgementPending else { return false }
        self.acknowledgementPending = false
        if self.state == .synReceived {
            self.state = .established
        }
        return true
    }

    /// The peer acknowledged our SYN. An ACK in any other state is ignored, as
    /// hashicorp/yamux does.
    mutating func receiveACK() {
        if self.state == .synSent {
            self.state = .established
        }
    }

    /// The peer half-closed the stream.
    /// - Throws: `.unexpectedFlag` for a FIN after the peer's FIN.
    mutating func receiveFIN() throws(YamuxError) -> ReceiveFINResult {
        switch self.state {
        case .synSent, .synReceived, .established:
            self.state = .remoteClosed
            return .halfClosed
        case .localClosed:
            self.state = .closed
            return .closed
        case .remoteClosed, .closed:
            throw .unexpectedFlag("second FIN")
        case .idle, .reset:
            throw .impossibleSituation("FIN routed to a stream in state \(self.state)")
        }
    }

    /// We half-close the stream.
    mutating func sendFIN() -> SendFINResult {
        switch self.state {
        case .synSent, .synReceived, .established:
            self.state = .localClosed
            return .halfClosed
        case .remoteClosed:
            self.state = .closed
            return .closed
        case .idle, .localClosed, .closed, .reset:
            return .alreadyClosed
        }
    }

    /// A RST was sent or received.
    mutating func reset() {
        self.state = .reset
        self.acknowledgementPending = false
    }
}
