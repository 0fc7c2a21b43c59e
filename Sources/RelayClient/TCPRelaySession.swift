import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import QUICTransport
import RelayCore
import YamuxNIO

/// One peer's relay session over the TCP fallback (DESIGN §9): TLS 1.3 with ALPN
/// `zrc-relay/1` (or plain TCP), yamux client; stream 1 carries the control frames, stream 3
/// the datagrams as `length u16 | payload`. Events go to `deliver`, on the channel's loop.
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

    /// Connects, opens streams 1 and 3 and sends ALLOCATE.
    /// - Parameters:
    ///   - tls: `nil` for plain TCP; else the server name to send (SNI) and an optional CA file
    ///     (without one the certificate is not verified: payloads are end-to-end encrypted).
    static func connect(
        to relay: TransportAddress, tls: (serverName: String?, caPath: String?)?, peerID: PeerID, token: [UInt8],
        timeout: Duration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        deliver: @escaping @Sendable (Event) -> Void
    ) async throws -> TCPRelaySession {
        var sslContext: NIOSSLContext?
        if let tls {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv13
            configuration.applicationProtocols = [FallbackWire.alpn]
            if let caPath = tls.caPath {
                configuration.trustRoots = .file(caPath)
            } else {
                configuration.certificateVerification = .none
            }
            sslContext = try NIOSSLContext(configuration: configuration)
        }
        let serverName = tls?.serverName
        let slot = NIOLockedValueBox<YamuxMultiplexer?>(nil)
        let handshake = group.any().makePromise(of: Void.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let multiplexer = YamuxMultiplexer(role: .client, eventLoop: channel.eventLoop) { _ in false }
                        slot.withLockedValue { $0 = multiplexer }
                        if let sslContext {
                            try channel.pipeline.syncOperations.addHandler(
                                try NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                            try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(promise: handshake))
                        } else {
                            handshake.succeed(())
                        }
                        try channel.pipeline.syncOperations.addHandler(multiplexer)
                    }
                }
                .connect(host: relay.hostString, port: Int(relay.port)).get()
        } catch {
            // Refused or timed out before any handshake: the promise must not leak.
            handshake.fail(error)
            throw error
        }
        do {
            try await handshake.futureResult.get()
        } catch {
            try? await channel.close()
            throw error
        }
        guard let multiplexer = slot.withLockedValue({ $0 }) else { throw QUICTransportError.connectFailed }
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

/// Fulfils `promise` when the TLS handshake completes with ALPN `zrc-relay/1`.
private final class HandshakeWatcher: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let promise: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            if negotiated == FallbackWire.alpn {
                promise.succeed(())
            } else {
                promise.fail(RelayClientError.fallbackRefused("the relay did not agree on ALPN zrc-relay/1"))
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(RelayClientError.fallbackRefused("connection closed during the TLS handshake"))
        context.fireChannelInactive()
    }
}

/// Why a relay client could not connect.
public enum RelayClientError: Error, CustomStringConvertible, Sendable {
    /// Neither QUIC nor the TCP fallback got an answer from the relay.
    case unreachable(quic: String, tcp: String)
    /// The TCP fallback connected but was refused.
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
