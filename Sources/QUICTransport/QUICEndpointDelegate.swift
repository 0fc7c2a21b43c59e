/// What the layer above decides about a new connection attempt, before any state is created.
public enum QUICAdmission: Sendable, Equatable {
    /// Go on with the handshake (subject to Retry policy).
    case accept
    /// Drop the packet silently.
    case drop
    /// Answer with a stateless CONNECTION_CLOSE carrying CONNECTION_REFUSED (no application code).
    case refuse
}

/// Why a connection ended.
public enum QUICCloseReason: Sendable, Equatable, CustomStringConvertible {
    /// Nothing was heard for `max_idle_timeout`.
    case idleTimeout
    /// The handshake did not finish within the handshake timeout.
    case handshakeTimeout
    /// The peer sent CONNECTION_CLOSE.
    case closedByPeer(errorCode: UInt64, isApplicationError: Bool, reason: String)
    /// We closed it (through `QUICConnection.close`).
    case closedLocally(errorCode: UInt64, isApplicationError: Bool)
    /// The handshake failed or the peer broke the protocol (TLS alert, transport error).
    case failed(String)
    /// The endpoint stopped.
    case endpointStopped

    public var description: String {
        switch self {
        case .idleTimeout: return "idle timeout"
        case .handshakeTimeout: return "handshake timeout"
        case .closedByPeer(let code, let app, let reason):
            return "closed by peer (\(app ? "application" : "transport") code \(code)\(reason.isEmpty ? "" : ", \(reason)"))"
        case .closedLocally(let code, let app):
            return "closed locally (\(app ? "application" : "transport") code \(code))"
        case .failed(let why): return "failed: \(why)"
        case .endpointStopped: return "endpoint stopped"
        }
    }
}

/// Why a datagram was not sent.
public enum DatagramDropReason: Error, Sendable, Equatable {
    /// Larger than the peer's `max_datagram_frame_size` or than the current path can carry.
    case tooLarge
    /// The send queue was full, or the datagram waited longer than the queue's age limit.
    case queueFull
    /// The connection is not established, or the peer did not negotiate DATAGRAM.
    case notReady
}

/// Receives a `QUICEndpoint`'s events. Every method is called on the endpoint's own thread, and
/// may call back into the connection (sending, writing, closing are all deferred safely).
public protocol QUICEndpointDelegate: AnyObject {
    /// Server role: a client's first Initial packet arrived from `remote`.
    func endpoint(_ endpoint: QUICEndpoint, shouldAccept remote: TransportAddress) -> QUICAdmission
    /// The handshake completed (ALPN matched; transport parameters of the peer are known).
    func connectionEstablished(_ connection: QUICConnection)
    /// A DATAGRAM frame arrived. The bytes are valid only during the call.
    func connection(_ connection: QUICConnection, didReceiveDatagram payload: UnsafeRawBufferPointer)
    /// Bytes arrived in order on the control stream (the client's first bidirectional stream).
    func connection(_ connection: QUICConnection, didReceiveControlData bytes: UnsafeRawBufferPointer, fin: Bool)
    /// Queued datagrams were dropped when it came to sending them (they got too old, or the
    /// path shrank below their size).
    func connection(_ connection: QUICConnection, didDropQueuedDatagrams count: Int, reason: DatagramDropReason)
    /// The connection ended; called once. The connection object must not be used afterwards.
    func connectionClosed(_ connection: QUICConnection, reason: QUICCloseReason)
    /// Runs every `QUICConfiguration.tickInterval` on the loop thread (timeouts of the layer above).
    func endpointDidTick(_ endpoint: QUICEndpoint)
}

extension QUICEndpointDelegate {
    public func endpoint(_ endpoint: QUICEndpoint, shouldAccept remote: TransportAddress) -> QUICAdmission { .accept }
    public func connection(_ connection: QUICConnection, didDropQueuedDatagrams count: Int, reason: DatagramDropReason) {}
    public func endpointDidTick(_ endpoint: QUICEndpoint) {}
}
