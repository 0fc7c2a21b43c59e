import Logging
import QUICTransport
import RelayCore

/// A relay client reached by another transport than QUIC (the TCP/TLS fallback or WebSocket,
/// DESIGN §9).
///
/// The relay calls these methods on its loop thread; an implementation hands the work to
/// its own thread and must not block.
public protocol RelayPeerLink: AnyObject, Sendable {
    /// The client's address (per-IP limits, logs, `observed_addr`).
    var remoteAddress: TransportAddress { get }
    /// The address the client reached (for `relay_addr` when `server.public_addr` is unset).
    var localHost: String { get }
    /// `tcp` or `websocket`, for metrics and the admin API (read once, at attach).
    var transport: RelayCounters.Transport { get }
    /// Encoded control frames for the client, in order.
    func sendControl(_ bytes: [UInt8])
    /// One datagram for the client. Returns `false` when it could not be queued (dropped).
    func sendDatagram(_ payload: UnsafeRawBufferPointer) -> Bool
    /// Ends the connection once the control frames already handed over are written.
    func close(code: RelayErrorCode)
}

extension RelayServer {
    /// A fallback client and its control-stream parser.
    final class LinkState {
        let link: any RelayPeerLink
        let connection: ConnectionState
        let transport: RelayCounters.Transport
        init(link: any RelayPeerLink, connection: ConnectionState) {
            self.link = link
            self.connection = connection
            self.transport = link.transport
        }
    }

    /// Handles of links live in their own range, far above any QUIC connection handle.
    static let linkHandleBase: UInt64 = 1 << 62

    // MARK: Thread-safe entry points for the fallback transport

    /// Admits a new fallback client (block/allow lists, draining, per-IP connection rate).
    /// `completion` gets its handle, or `nil` when it is refused (then close it).
    public func attachLink(_ link: any RelayPeerLink, completion: @escaping @Sendable (UInt64?) -> Void) {
        endpoint.execute { [self] in
            guard admit(link.remoteAddress) == .accept else {
                completion(nil)
                return
            }
            nextLinkID += 1
            let handle = Self.linkHandleBase + nextLinkID
            var connectionLogger = logger
            connectionLogger[metadataKey: "zrc.conn.id"] = "\(link.transport.rawValue)-\(nextLinkID)"
            connectionLogger[metadataKey: "zrc.peer.addr"] = "\(link.remoteAddress)"
            links[handle] = LinkState(link: link, connection: ConnectionState(remote: link.remoteAddress, logger: connectionLogger))
            counters.connections[link.transport, default: 0] += 1
            allocateDeadlines.watch(ConnectionHandle(handle), now: now)
            connectionLogger.debug("fallback connection established")
            completion(handle)
        }
    }

    /// Bytes of the control stream (yamux stream 1) of a fallback client.
    public func linkReceivedControl(_ handle: UInt64, _ bytes: [UInt8]) {
        endpoint.execute { [self] in
            guard let state = links[handle] else { return }
            let connection = ConnectionHandle(handle)
            do throws(RelayError) {
                try state.connection.parser.append(bytes)
                while let frame = try state.connection.parser.nextFrame() {
                    self.handle(frame, handle: connection, state: state.connection) {
                        AllocationTable.Addressing(
                            relayPort: self.configuration.relayPort,
                            relayAddress: self.configuration.publicAddress ?? state.link.localHost,
                            observedAddress: state.link.remoteAddress.description)
                    }
                    guard links[handle] != nil else { return }
                }
            } catch {
                state.connection.logger.info("malformed control frame", metadata: ["zrc.error.code": "bad_message", "reason": "\(error.reason)"])
                send(.error(code: .badMessage, reason: error.reason), to: connection)
                close(connection, code: .badMessage)
            }
        }
    }

    /// Datagrams from a fallback client, in order. `completion` gets how many of them were
    /// taken (forwarded or dropped) and, when a bandwidth cap held the next one back, the
    /// nanoseconds to wait before offering the rest again. The fallback paces its reader with
    /// that, so a TCP sender is capped by backpressure rather than by loss.
    public func linkReceivedDatagrams(
        _ handle: UInt64, _ datagrams: [[UInt8]], completion: @escaping @Sendable (_ taken: Int, _ delayNanoseconds: UInt64) -> Void
    ) {
        endpoint.execute { [self] in
            let from = ConnectionHandle(handle)
            for (index, datagram) in datagrams.enumerated() {
                let delay = table.bandwidthDelay(from: from, length: datagram.count, now: now)
                if delay > 0 {
                    completion(index, delay)
                    return
                }
                datagram.withUnsafeBytes { forward($0, from: from) }
            }
            completion(datagrams.count, 0)
        }
    }

    /// The fallback connection ended.
    public func linkClosed(_ handle: UInt64) {
        endpoint.execute { [self] in
            guard let state = links.removeValue(forKey: handle) else { return }
            counters.connections[state.transport, default: 0] -= 1
            state.connection.logger.debug("fallback connection closed")
            perform(table.connectionClosed(ConnectionHandle(handle), now: now))
        }
    }
}
