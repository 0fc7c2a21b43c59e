import Logging
import QUICTransport
import RelayCore

/// What a `RelayClient` hears, in order.
public enum RelayClientEvent: Sendable, Equatable {
    /// A control frame from the relay.
    case frame(ControlFrame)
    /// A datagram from the other peer.
    case datagram([UInt8])
    /// The connection ended.
    case closed(QUICCloseReason)
}

/// An async, thread-safe handle on one relay session: `connect`, then read `events` and
/// `send` datagrams. Built on `RelayClientEndpoint`; sessions may share one endpoint.
public final class RelayClient: RelaySessionDelegate, @unchecked Sendable {
    // @unchecked Sendable: `session` is touched only on the endpoint's loop thread; the
    // continuation is Sendable.

    public let events: AsyncStream<RelayClientEvent>
    private let continuation: AsyncStream<RelayClientEvent>.Continuation
    public let client: RelayClientEndpoint
    private var session: RelaySession?

    private init(client: RelayClientEndpoint) {
        self.client = client
        (events, continuation) = AsyncStream.makeStream(of: RelayClientEvent.self, bufferingPolicy: .bufferingNewest(100_000))
    }

    /// Opens a session on `client` (start it first) and sends ALLOCATE once the handshake completes.
    public static func connect(client: RelayClientEndpoint, relay: SocketAddress, serverName: String? = nil,
                               peerID: PeerID, token: [UInt8]) async throws -> RelayClient {
        let relayClient = RelayClient(client: client)
        let opened: Bool = await withCheckedContinuation { done in
            client.execute { endpoint in
                let session = endpoint.open(relay: relay, serverName: serverName, peerID: peerID, token: token, delegate: relayClient)
                relayClient.session = session
                done.resume(returning: session != nil)
            }
        }
        guard opened else { throw QUICTransportError.connectFailed }
        return relayClient
    }

    /// Sends a datagram (copied; hops to the loop thread).
    public func send(_ payload: [UInt8]) {
        client.execute { [self] _ in session?.send(payload) }
    }

    /// Sends many datagrams in one hop.
    public func send(batch: [[UInt8]]) {
        client.execute { [self] _ in for p in batch { session?.send(p) } }
    }

    /// Writes raw control bytes.
    public func sendControl(_ bytes: [UInt8]) {
        client.execute { [self] _ in session?.sendControl(bytes) }
    }

    public func refresh(token: [UInt8]) {
        client.execute { [self] _ in session?.refresh(token: token) }
    }

    public func release() {
        client.execute { [self] _ in session?.release() }
    }

    /// Closes the QUIC connection (no RELEASE).
    public func close() {
        client.execute { [self] _ in session?.close() }
    }

    /// Waits for the next event matching `predicate`, up to `timeout`; events before it are consumed.
    public func next(timeout: Duration = .seconds(10), where predicate: @escaping @Sendable (RelayClientEvent) -> Bool) async -> RelayClientEvent? {
        await withTaskGroup(of: RelayClientEvent?.self) { group in
            group.addTask { [events] in
                for await event in events where predicate(event) { return event }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    // MARK: RelaySessionDelegate (loop thread)

    public func session(_ session: RelaySession, didReceive frame: ControlFrame) {
        continuation.yield(.frame(frame))
    }

    public func session(_ session: RelaySession, didReceiveDatagram payload: UnsafeRawBufferPointer) {
        continuation.yield(.datagram(Array(payload)))
    }

    public func sessionClosed(_ session: RelaySession, reason: QUICCloseReason) {
        continuation.yield(.closed(reason))
        continuation.finish()
        self.session = nil
    }
}

