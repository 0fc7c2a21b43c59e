import QUICTransport
import RelayCore

/// Receives a relay session's events, on its endpoint's loop thread.
public protocol RelaySessionDelegate: AnyObject {
    /// A control frame from the relay (ALLOCATED, PEER, QUOTA, REFRESHED, GOAWAY, STATUS, ERROR).
    func session(_ session: RelaySession, didReceive frame: ControlFrame)
    /// A datagram from the other peer; bytes valid only during the call.
    func session(_ session: RelaySession, didReceiveDatagram payload: UnsafeRawBufferPointer)
    /// The QUIC connection ended (the session is over; reconnecting is the caller's choice).
    func sessionClosed(_ session: RelaySession, reason: QUICCloseReason)
    /// The handshake completed and ALLOCATE went out.
    func sessionEstablished(_ session: RelaySession)
}

extension RelaySessionDelegate {
    public func sessionEstablished(_ session: RelaySession) {}
}

/// One peer's relay session over one QUIC connection: ALLOCATE on connect, then datagrams.
/// Confined to its endpoint's loop thread.
public final class RelaySession {
    public let connection: QUICConnection
    public let peerID: PeerID
    public private(set) var token: [UInt8]
    public weak var delegate: (any RelaySessionDelegate)?
    var parser = ControlFrameParser(direction: .fromRelay)
    private var closeRequested = false

    /// What ALLOCATED said, once it arrived.
    public internal(set) var allocated: ControlFrame.Allocated?
    /// The latest PEER state.
    public internal(set) var peerState: PeerState?
    /// Whether the session was told to go away.
    public internal(set) var goAway: ControlFrame.GoAway?
    /// The last ERROR.
    public internal(set) var lastError: (code: RelayErrorCode, reason: String)?

    init(connection: QUICConnection, peerID: PeerID, token: [UInt8]) {
        self.connection = connection
        self.peerID = peerID
        self.token = token
    }

    /// Whether datagrams flow (paired).
    public var isPaired: Bool { peerState == .paired && connection.isEstablished }

    /// Sends a datagram to the other peer through the relay.
    @discardableResult
    public func send(_ payload: UnsafeRawBufferPointer) -> Result<Void, DatagramDropReason> {
        connection.sendDatagram(payload)
    }

    @discardableResult
    public func send(_ payload: [UInt8]) -> Result<Void, DatagramDropReason> {
        connection.sendDatagram(payload)
    }

    /// Writes any control frame (tests use this to send malformed ones too).
    public func sendControl(_ bytes: [UInt8]) {
        connection.writeControl(bytes)
    }

    /// REFRESH with a new token.
    public func refresh(token: [UInt8]) {
        self.token = token
        connection.writeControl(ControlFrameSerializer.encode(.refresh(token: token)))
    }

    /// RELEASE: ends the allocation for both peers.
    public func release() {
        connection.writeControl(ControlFrameSerializer.encode(.release))
    }

    /// Closes the connection without RELEASE (the allocation survives for idle_timeout).
    /// A session closed before its handshake completed never sends ALLOCATE, so an abandoned
    /// attempt cannot replace a newer connection of the same peer at the relay.
    public func close() {
        closeRequested = true
        connection.close(errorCode: 0, reason: "client closed")
    }

    /// The handshake completed: ALLOCATE, unless the session was closed meanwhile.
    func handshakeCompleted() {
        guard !closeRequested else { return }
        connection.writeControl(ControlFrameSerializer.encode(.allocate(peerID: peerID, token: token)))
        delegate?.sessionEstablished(self)
    }

    func receiveControl(_ bytes: UnsafeRawBufferPointer) {
        do {
            try parser.append(bytes)
            while let frame = try parser.nextFrame() {
                switch frame {
                case .allocated(let a): allocated = a
                case .peer(let state): peerState = state
                case .goAway(let g): goAway = g
                case .error(let code, let reason): lastError = (code, reason)
                default: break
                }
                delegate?.session(self, didReceive: frame)
            }
        } catch {
            connection.close(errorCode: UInt64(RelayErrorCode.badMessage.rawValue), reason: "malformed frame from relay")
        }
    }
}

@available(*, unavailable)
extension RelaySession: Sendable {}
