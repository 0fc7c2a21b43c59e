import Logging
import QUICTransport
import RelayCore
import Synchronization
import WebSocketTransport

/// The transport of a relay session.
public enum RelayClientTransport: String, Sendable {
    /// QUIC with DATAGRAM frames (the normal path).
    case quic
    /// yamux over TCP (TLS), when UDP does not get through.
    case tcp
    /// yamux in WebSocket messages, for networks that pass only HTTPS (DESIGN §9 v3).
    case websocket
}

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
    /// The QUIC endpoint (also kept for a TCP session, which falls back from it).
    public let client: RelayClientEndpoint
    /// The transport this session uses.
    public let transport: RelayClientTransport
    private var session: RelaySession?
    private var tcp: TCPRelaySession?
    /// Set by the first event: whether the QUIC connection answered at all (for fallback).
    private let firstEvent = Mutex<CheckedContinuation<Bool, Never>?>(nil)
    private let heardFromRelay = Atomic<Bool>(false)
    private let established = Atomic<Bool>(false)

    /// Whether the transport is up: the QUIC handshake completed (and ALLOCATE went out), or
    /// the TCP fallback connected. Set on the loop thread, readable from anywhere.
    public var isEstablished: Bool { transport != .quic || established.load(ordering: .acquiring) }

    private init(client: RelayClientEndpoint, transport: RelayClientTransport = .quic) {
        self.client = client
        self.transport = transport
        (events, continuation) = AsyncStream.makeStream(of: RelayClientEvent.self, bufferingPolicy: .bufferingNewest(100_000))
    }

    /// Opens a session on `client` (start it first) and sends ALLOCATE once the handshake completes.
    public static func connect(client: RelayClientEndpoint, relay: TransportAddress, serverName: String? = nil,
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

    /// Opens a session over the TCP fallback (DESIGN §9) to `relay` (the same port as QUIC).
    /// - Parameters:
    ///   - tls: Use TLS 1.3 (default); `false` for a relay with `fallback.tls = false`.
    ///   - caPath: PEM CAs to verify the relay with; without, the certificate is not verified.
    ///   - proxy: Reach the relay through this HTTP proxy (`CONNECT`).
    public static func connectTCP(client: RelayClientEndpoint, relay: TransportAddress, serverName: String? = nil,
                                  peerID: PeerID, token: [UInt8], tls: Bool = true, caPath: String? = nil,
                                  proxy: HTTPProxy? = nil, timeout: Duration = .seconds(10)) async throws -> RelayClient {
        try await connectStream(client: client, transport: .tcp, dial: .tcp(relay, tls: tls ? (serverName, caPath) : nil),
                                proxy: proxy, peerID: peerID, token: token, timeout: timeout)
    }

    /// Opens a session over WebSocket (DESIGN §9 v3) at `address` (`wss://host:port/path`).
    public static func connectWebSocket(client: RelayClientEndpoint, address: WebSocketAddress, serverName: String? = nil,
                                        peerID: PeerID, token: [UInt8], caPath: String? = nil, proxy: HTTPProxy? = nil,
                                        timeout: Duration = .seconds(10)) async throws -> RelayClient {
        try await connectStream(client: client, transport: .websocket,
                                dial: .websocket(address, serverName: serverName, caPath: caPath),
                                proxy: proxy, peerID: peerID, token: token, timeout: timeout)
    }

    private static func connectStream(client: RelayClientEndpoint, transport: RelayClientTransport, dial: TCPRelaySession.Dial,
                                      proxy: HTTPProxy?, peerID: PeerID, token: [UInt8], timeout: Duration) async throws -> RelayClient {
        let relayClient = RelayClient(client: client, transport: transport)
        let continuation = relayClient.continuation
        relayClient.tcp = try await TCPRelaySession.connect(dial, proxy: proxy, peerID: peerID, token: token, timeout: timeout) { event in
            switch event {
            case .frame(let frame): continuation.yield(.frame(frame))
            case .datagram(let bytes): continuation.yield(.datagram(bytes))
            case .closed(let why):
                continuation.yield(.closed(.closedByPeer(errorCode: 0, isApplicationError: true, reason: "\(transport.rawValue): \(why)")))
                continuation.finish()
            }
        }
        return relayClient
    }

    /// QUIC first; when the relay does not answer over QUIC within `quicTimeout` (UDP blocked,
    /// handshake failed), the TCP fallback (DESIGN §8, §9). `ResilientRelaySession` goes on to
    /// WebSocket as well.
    public static func connectWithFallback(client: RelayClientEndpoint, relay: TransportAddress, serverName: String? = nil,
                                           peerID: PeerID, token: [UInt8], quicTimeout: Duration = .seconds(3),
                                           tls: Bool = true, caPath: String? = nil) async throws -> RelayClient {
        let quicError: String
        do {
            let quic = try await connect(client: client, relay: relay, serverName: serverName, peerID: peerID, token: token)
            if await quic.waitForRelay(timeout: quicTimeout) { return quic }
            quic.close()
            quicError = "no answer within \(quicTimeout)"
        } catch {
            quicError = "\(error)"
        }
        do {
            return try await connectTCP(client: client, relay: relay, serverName: serverName, peerID: peerID, token: token,
                                        tls: tls, caPath: caPath)
        } catch {
            throw RelayClientError.unreachable(quic: quicError, tcp: "\(error)")
        }
    }

    /// Whether the relay sent anything (a control frame) within `timeout`; `false` when the
    /// connection closed first or nothing came.
    private func waitForRelay(timeout: Duration) async -> Bool {
        if heardFromRelay.load(ordering: .acquiring) { return true }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let resumeNow: Bool? = self.firstEvent.withLock { slot in
                        if self.heardFromRelay.load(ordering: .acquiring) { return true }
                        slot = continuation
                        return nil
                    }
                    if let resumeNow { continuation.resume(returning: resumeNow) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.resolveFirstEvent(false)
                return false
            }
            let answer = await group.next() ?? false
            group.cancelAll()
            return answer
        }
    }

    private func resolveFirstEvent(_ heard: Bool) {
        if heard { heardFromRelay.store(true, ordering: .releasing) }
        let waiter = firstEvent.withLock { slot -> CheckedContinuation<Bool, Never>? in
            let waiter = slot
            slot = nil
            return waiter
        }
        waiter?.resume(returning: heard)
    }

    /// Sends a datagram (copied; hops to the loop thread).
    public func send(_ payload: [UInt8]) {
        if let tcp { return tcp.send(payload) }
        client.execute { [self] _ in session?.send(payload) }
    }

    /// Sends many datagrams in one hop.
    public func send(batch: [[UInt8]]) {
        if let tcp { return batch.forEach(tcp.send) }
        client.execute { [self] _ in for p in batch { session?.send(p) } }
    }

    /// Writes raw control bytes.
    public func sendControl(_ bytes: [UInt8]) {
        if let tcp { return tcp.sendControl(bytes) }
        client.execute { [self] _ in session?.sendControl(bytes) }
    }

    public func refresh(token: [UInt8]) {
        sendControl(ControlFrameSerializer.encode(.refresh(token: token)))
    }

    public func release() {
        sendControl(ControlFrameSerializer.encode(.release))
    }

    /// Closes the connection (no RELEASE).
    public func close() {
        if let tcp { return tcp.close() }
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
        if !heardFromRelay.load(ordering: .relaxed) { resolveFirstEvent(true) }
        continuation.yield(.frame(frame))
    }

    public func session(_ session: RelaySession, didReceiveDatagram payload: UnsafeRawBufferPointer) {
        continuation.yield(.datagram(Array(payload)))
    }

    public func sessionEstablished(_ session: RelaySession) {
        established.store(true, ordering: .releasing)
    }

    public func sessionClosed(_ session: RelaySession, reason: QUICCloseReason) {
        resolveFirstEvent(false)
        continuation.yield(.closed(reason))
        continuation.finish()
        self.session = nil
    }
}

