import Logging
import QUICTransport
import RelayCore

/// A client-side QUIC endpoint carrying any number of relay sessions (one UDP socket, one
/// loop thread). The CLI, the tests and the benchmark build on it.
public final class RelayClientEndpoint: QUICEndpointDelegate, @unchecked Sendable {
    // @unchecked Sendable: `sessions` is confined to the endpoint's loop thread.

    public let endpoint: QUICEndpoint
    private var sessions: [UInt64: RelaySession] = [:]

    /// Binds a UDP socket (`bindAddress` port 0 = any).
    public init(configuration: QUICConfiguration = QUICConfiguration(), bindAddress: TransportAddress, logger: Logger) throws {
        var configuration = configuration
        if configuration.keepAliveInterval == nil { configuration.keepAliveInterval = .seconds(15) }
        endpoint = try QUICEndpoint(role: .client, configuration: configuration, bindAddress: bindAddress, logger: logger)
        endpoint.delegate = self
    }

    public func start() throws { try endpoint.start() }

    public func stop() {
        endpoint.stop()
        endpoint.delegate = nil
    }

    /// Opens a session (loop thread only): QUIC handshake, then ALLOCATE with `token` as `peerID`.
    public func open(relay: TransportAddress, serverName: String?, peerID: PeerID, token: [UInt8],
                     delegate: any RelaySessionDelegate) -> RelaySession? {
        guard let connection = endpoint.connect(to: relay, serverName: serverName) else { return nil }
        let session = RelaySession(connection: connection, peerID: peerID, token: token)
        session.delegate = delegate
        sessions[connection.id] = session
        connection.context = session
        return session
    }

    /// Runs `body` on the loop thread.
    public func execute(_ body: @escaping @Sendable (RelayClientEndpoint) -> Void) {
        endpoint.execute { [self] in body(self) }
    }

    public var sessionCount: Int { sessions.count }

    /// Runs on the loop thread every `QUICConfiguration.tickInterval` (the benchmark paces
    /// its sends with it). Set it on the loop thread.
    public var tickHandler: ((RelayClientEndpoint) -> Void)?

    public func endpointDidTick(_ endpoint: QUICEndpoint) {
        tickHandler?(self)
    }

    // MARK: QUICEndpointDelegate

    public func connectionEstablished(_ connection: QUICConnection) {
        (connection.context as? RelaySession)?.handshakeCompleted()
    }

    public func connection(_ connection: QUICConnection, didReceiveDatagram payload: UnsafeRawBufferPointer) {
        guard let session = connection.context as? RelaySession else { return }
        session.delegate?.session(session, didReceiveDatagram: payload)
    }

    public func connection(_ connection: QUICConnection, didReceiveControlData bytes: UnsafeRawBufferPointer, fin: Bool) {
        (connection.context as? RelaySession)?.receiveControl(bytes)
    }

    public func connectionClosed(_ connection: QUICConnection, reason: QUICCloseReason) {
        guard let session = sessions.removeValue(forKey: connection.id) else { return }
        connection.context = nil
        session.delegate?.sessionClosed(session, reason: reason)
    }
}
