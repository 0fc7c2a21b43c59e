import NIOCore
import NIOPosix
import QUICTransport
import RelayCore
import WebSocketTransport
import YamuxNIO

/// One peer's relay session over the TCP fallback (DESIGN §9): TLS 1.3 with ALPN
/// `zrc-relay/1` (or plain TCP), or a WebSocket; yamux client; stream 1 carries the control
/// frames, stream 3 the datagrams as `length u16 | payload`. Events go to `deliver`, on the
/// channel's loop.
final class TCPRelaySession: Sendable {
    /// What the session reports.
    enum Event: Sendable {
        case frame(ControlFrame)
        case datagram([UInt8])
        case closed(String)
    }

    private let multiplexer: YamuxMultiplexer
    private let control: YamuxStreamChannel
    private let datagrams: YamuxStreamChannel
    private let channel: any Channel

    private init(multiplexer: YamuxMultiplexer, control: YamuxStreamChannel, datagrams: YamuxStreamChannel, channel: any Channel) {
        self.multiplexer = multiplexer
        self.control = control
        self.datagrams = datagrams
        self.channel = channel
    }

    /// How the byte stream under yamux is reached.
    enum Dial: Sendable {
        /// TCP to the relay's port; TLS 1.3 with ALPN `zrc-relay/1` unless `tls` is `nil`
        /// (then plain TCP). Without a CA file the certificate is not verified: payloads are
        /// end-to-end encrypted.
        case tcp(TransportAddress, tls: (serverName: String?, caPath: String?)?)
        /// A WebSocket (DESIGN §9 v3): binary messages carry the same yamux stream.
        case websocket(WebSocketAddress, serverName: String?, caPath: String?)
    }

    /// Connects (through `proxy` with HTTP `CONNECT` when given), opens streams 1 and 3 and
    /// sends ALLOCATE.
    static func connect(
        _ dial: Dial, proxy: HTTPProxy? = nil, peerID: PeerID, token: [UInt8],
        timeout: Duration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        deliver: @escaping @Sendable (Event) -> Void
    ) async throws -> TCPRelaySession {
        let dialer = StreamDialer(proxy: proxy, stepTimeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000
                                                                         + timeout.components.attoseconds / 1_000_000_000), group: group)
        let channel: any Channel
        switch dial {
        case .tcp(let relay, let tls):
            let (connected, negotiated) = try await dialer.connect(
                host: relay.hostString, port: Int(relay.port),
                tls: tls.map { StreamDialer.TLS(serverName: $0.serverName, caPath: $0.caPath, alpn: [FallbackWire.alpn]) })
            if tls != nil, negotiated != FallbackWire.alpn {
                try? await connected.close()
                throw RelayClientError.fallbackRefused("the relay did not agree on ALPN zrc-relay/1")
            }
            channel = connected
        case .websocket(let address, let serverName, let caPath):
            channel = try await dialer.connectWebSocket(address, serverName: serverName, caPath: caPath)
        }
        let multiplexer: YamuxMultiplexer
        do {
            multiplexer = try await channel.eventLoop.submit {
                let multiplexer = YamuxMultiplexer(role: .client, eventLoop: channel.eventLoop) { _ in false }
                try channel.pipeline.syncOperations.addHandler(multiplexer)
                return multiplexer
            }.get()
        } catch {
            try? await channel.close()
            throw error
        }
        // A new client session opens ids 1 and 3 in this order: exactly the wire's streams.
        let control = try await multiplexer.openStream().get()
        let datagrams = try await multiplexer.openStream().get()
        guard control.id == FallbackWire.controlStreamID, datagrams.id == FallbackWire.datagramStreamID else {
            multiplexer.close()
            throw QUICTransportError.connectFailed
        }
        let session = TCPRelaySession(multiplexer: multiplexer, control: control, datagrams: datagrams, channel: channel)
        session.wire(deliver)
        control.write(ByteBuffer(bytes: ControlFrameSerializer.encode(.allocate(peerID: peerID, token: token))))
        return session
    }

    private func wire(_ deliver: @escaping @Sendable (Event) -> Void) {
        let control = self.control
        // Parser and reassembly buffer are touched only by the streams' handlers, on their loop.
        let parser = NIOLoopBoundBox.makeBoxSendingValue(ControlFrameParser(direction: .fromRelay), eventLoop: control.eventLoop)
        let multiplexer = self.multiplexer
        control.setEventHandler { event in
            switch event {
            case .data(let buffer):
                control.consumed(buffer.readableBytes)
                let frames: [ControlFrame]?
                do {
                    try parser.value.append(buffer.readableBytesView)
                    var decoded: [ControlFrame] = []
                    while let frame = try parser.value.nextFrame() { decoded.append(frame) }
                    frames = decoded
                } catch {
                    frames = nil
                }
                guard let frames else {
                    multiplexer.close()
                    return
                }
                for frame in frames { deliver(.frame(frame)) }
            case .endOfInput, .closed, .reset:
                multiplexer.close()
            }
        }
        let datagrams = self.datagrams
        let inbound = NIOLoopBoundBox.makeBoxSendingValue(ByteBuffer(), eventLoop: datagrams.eventLoop)
        datagrams.setEventHandler { event in
            guard case .data(var buffer) = event else { return }
            let count = buffer.readableBytes
            inbound.value.writeBuffer(&buffer)
            var complete: [[UInt8]] = []
            while let size = FallbackWire.framedSize(in: inbound.value, at: inbound.value.readerIndex) {
                inbound.value.moveReaderIndex(forwardBy: 2)
                complete.append(inbound.value.readBytes(length: size - 2) ?? [])
            }
            inbound.value.discardReadBytes()
            datagrams.consumed(count)
            for datagram in complete { deliver(.datagram(datagram)) }
        }
        multiplexer.sessionClosed.whenComplete { result in
            switch result {
            case .success(let reason): deliver(.closed("\(reason)"))
            case .failure(let error): deliver(.closed("\(error)"))
            }
        }
    }

    /// Sends a datagram (dropped when it does not fit `u16`).
    func send(_ payload: [UInt8]) {
        guard let buffer = payload.withUnsafeBytes({ FallbackWire.framedDatagram($0) }) else { return }
        datagrams.write(buffer)
    }

    func sendControl(_ bytes: [UInt8]) {
        control.write(ByteBuffer(bytes: bytes))
    }

    func close() {
        multiplexer.close()
    }
}

/// Why a relay client could not connect.
public enum RelayClientError: Error, CustomStringConvertible, Sendable {
    /// Neither QUIC nor the TCP fallback got an answer from the relay.
    case unreachable(quic: String, tcp: String)
    /// The TCP fallback (or WebSocket) connected but was refused.
    case fallbackRefused(String)
    /// An address that is not `host:port` or does not resolve.
    case badAddress(String)
    /// A transport this build does not have.
    case unsupportedTransport(String)

    public var description: String {
        switch self {
        case .unreachable(let quic, let tcp): return "relay unreachable: QUIC: \(quic); TCP fallback: \(tcp)"
        case .fallbackRefused(let why): return "TCP fallback refused: \(why)"
        case .badAddress(let address): return "cannot resolve relay address \(address)"
        case .unsupportedTransport(let name): return "transport \(name) is not in this build"
        }
    }
}
