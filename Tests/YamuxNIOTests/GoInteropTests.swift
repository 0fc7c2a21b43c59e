import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import Yamux
import YamuxNIO

/// Our YamuxNIO against hashicorp/yamux (Debian's Go package), both roles, over real TCP.
@Suite(.serialized) struct GoInteropTests {
    static let group = MultiThreadedEventLoopGroup.singleton

    // MARK: Go client → our server

    @Test func goClientSends64MiBOnOneStreamToOurSink() async throws {
        let server = try await SwiftServer.start { stream in Sink.attach(to: stream) }
        defer { server.close() }
        let peer = try GoYamuxPeer(["-mode", "client", "-connect", "127.0.0.1:\(server.port)",
                                    "-behavior", "source", "-bytes", "\(64 << 20)", "-streams", "1", "-reply", "sha256"])
        let status = await peer.wait()
        #expect(status == 0, "go peer: \(peer.stdout)")
        #expect(peer.stdout.contains("ok"))
    }

    @Test func goClientSendsOn32ConcurrentStreamsToOurSink() async throws {
        let server = try await SwiftServer.start { stream in Sink.attach(to: stream) }
        defer { server.close() }
        let peer = try GoYamuxPeer(["-mode", "client", "-connect", "127.0.0.1:\(server.port)",
                                    "-behavior", "source", "-bytes", "\(2 << 20)", "-streams", "32", "-reply", "sha256"])
        #expect(await peer.wait() == 0, "go peer: \(peer.stdout)")
    }

    @Test func goClientGetsItsBytesEchoedAfterHalfClose() async throws {
        let server = try await SwiftServer.start { stream in Echo.attach(to: stream) }
        defer { server.close() }
        let peer = try GoYamuxPeer(["-mode", "client", "-connect", "127.0.0.1:\(server.port)",
                                    "-behavior", "source", "-bytes", "\(8 << 20)", "-streams", "4", "-reply", "echo"])
        #expect(await peer.wait() == 0, "go peer: \(peer.stdout)")
    }

    @Test func goClientPingsAreAnswered() async throws {
        let server = try await SwiftServer.start { _ in true }
        defer { server.close() }
        let peer = try GoYamuxPeer(["-mode", "client", "-connect", "127.0.0.1:\(server.port)", "-behavior", "ping", "-count", "5"])
        #expect(await peer.wait() == 0)
        #expect(peer.stdout.components(separatedBy: "rtt ").count == 6)
    }

    @Test func goClientResetIsSeenAndSessionGoesOn() async throws {
        let resets = NIOLockedValueBox<[YamuxStreamResetReason]>([])
        let server = try await SwiftServer.start { stream in
            stream.setEventHandler { event in
                if case .reset(let reason) = event { resets.withLockedValue { $0.append(reason) } }
            }
            return true
        }
        defer { server.close() }
        let peer = try GoYamuxPeer(["-mode", "client", "-connect", "127.0.0.1:\(server.port)", "-behavior", "rst"])
        #expect(await peer.wait() == 0, "go peer: \(peer.stdout)")
        #expect(resets.withLockedValue { $0 } == [.remote])
    }

    // MARK: Our client → Go server

    @Test func ourClientSends64MiBOnOneStreamToGoSink() async throws {
        let peer = try GoYamuxPeer(["-mode", "server", "-listen", "127.0.0.1:0", "-behavior", "sink"])
        defer { peer.terminate() }
        let client = try await SwiftClient.connect(port: try await peer.readyPort())
        let replies = try await client.sendAndCollect(streams: 1, bytesPerStream: 64 << 20)
        for (sent, reply) in replies { #expect(reply == sent) }
        client.close()
    }

    @Test func ourClientSendsOn32ConcurrentStreamsToGoSink() async throws {
        let peer = try GoYamuxPeer(["-mode", "server", "-listen", "127.0.0.1:0", "-behavior", "sink"])
        defer { peer.terminate() }
        let client = try await SwiftClient.connect(port: try await peer.readyPort())
        let replies = try await client.sendAndCollect(streams: 32, bytesPerStream: 2 << 20)
        #expect(replies.count == 32)
        for (sent, reply) in replies { #expect(reply == sent) }
        client.close()
    }

    @Test func ourClientHalfClosesAndReadsGoEchoToTheEnd() async throws {
        let peer = try GoYamuxPeer(["-mode", "server", "-listen", "127.0.0.1:0", "-behavior", "echo"])
        defer { peer.terminate() }
        let client = try await SwiftClient.connect(port: try await peer.readyPort())
        let stream = try await client.multiplexer.openStream().get()
        let collector = Collector.attach(to: stream)
        var payload = ByteBuffer()
        for i in 0..<(1 << 20) { payload.writeInteger(UInt8(truncatingIfNeeded: i &* 31)) }
        try await stream.write(payload).get()
        stream.closeWrite()
        let echoed = try await collector.result.get()
        #expect(echoed.bytes == Array(payload.readableBytesView))
        #expect(echoed.endedCleanly)
        client.close()
    }

    @Test func ourPingIsAnsweredByGo() async throws {
        let peer = try GoYamuxPeer(["-mode", "server", "-listen", "127.0.0.1:0", "-behavior", "echo"])
        defer { peer.terminate() }
        let client = try await SwiftClient.connect(port: try await peer.readyPort())
        let rtt = try await client.multiplexer.ping().get()
        #expect(rtt > .zero && rtt < .seconds(5))
        client.close()
    }

    @Test func ourResetReachesGo() async throws {
        let peer = try GoYamuxPeer(["-mode", "server", "-listen", "127.0.0.1:0", "-behavior", "echo"])
        defer { peer.terminate() }
        let client = try await SwiftClient.connect(port: try await peer.readyPort())
        let stream = try await client.multiplexer.openStream().get()
        try await stream.write(ByteBuffer(string: "about to reset")).get()
        try await Task.sleep(for: .milliseconds(100))
        stream.reset()
        try await Task.sleep(for: .milliseconds(200))
        client.close()
        _ = await peer.wait()
        #expect(peer.stdout.contains("reset \(stream.id)"))
    }
}

// MARK: - Harness

/// A yamux server on 127.0.0.1 (port 0) whose inbound streams go to `handler`.
struct SwiftServer {
    let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }

    static func start(_ handler: @escaping YamuxMultiplexer.InboundStreamInitializer) async throws -> SwiftServer {
        let channel = try await ServerBootstrap(group: GoInteropTests.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        YamuxMultiplexer(role: .server, eventLoop: channel.eventLoop, inboundStream: handler))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return SwiftServer(channel: channel)
    }

    func close() { channel.close(promise: nil) }
}

/// A yamux client connection.
struct SwiftClient {
    let channel: any Channel
    let multiplexer: YamuxMultiplexer

    static func connect(port: Int) async throws -> SwiftClient {
        let box = NIOLockedValueBox<YamuxMultiplexer?>(nil)
        let channel = try await ClientBootstrap(group: GoInteropTests.group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let multiplexer = YamuxMultiplexer(role: .client, eventLoop: channel.eventLoop) { _ in false }
                    box.withLockedValue { $0 = multiplexer }
                    try channel.pipeline.syncOperations.addHandler(multiplexer)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return SwiftClient(channel: channel, multiplexer: box.withLockedValue { $0 }!)
    }

    /// Writes `bytesPerStream` deterministic bytes on each of `streams` new streams, half-closes,
    /// and returns (our SHA-256 hex, the peer's reply) per stream.
    func sendAndCollect(streams: Int, bytesPerStream: Int) async throws -> [(String, String)] {
        try await withThrowingTaskGroup(of: (String, String).self) { group in
            for index in 0..<streams {
                group.addTask {
                    let stream = try await multiplexer.openStream().get()
                    let collector = Collector.attach(to: stream)
                    var hasher = SHA256()
                    let chunkSize = 256 * 1024
                    var chunk = ByteBuffer()
                    for i in 0..<chunkSize { chunk.writeInteger(UInt8(truncatingIfNeeded: i &* 7 &+ index)) }
                    var left = bytesPerStream
                    while left > 0 {
                        let slice = chunk.getSlice(at: 0, length: min(left, chunkSize))!
                        hasher.update(data: Array(slice.readableBytesView))
                        try await stream.write(slice).get()
                        left -= slice.readableBytes
                    }
                    stream.closeWrite()
                    let reply = try await collector.result.get()
                    let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
                    return (digest, String(decoding: reply.bytes, as: UTF8.self))
                }
            }
            var results: [(String, String)] = []
            for try await result in group { results.append(result) }
            return results
        }
    }

    func close() { channel.close(promise: nil) }
}

/// Collects a stream's bytes until its end.
final class Collector: Sendable {
    struct Outcome: Sendable {
        var bytes: [UInt8]
        var endedCleanly: Bool
    }

    let result: EventLoopFuture<Outcome>

    private init(result: EventLoopFuture<Outcome>) { self.result = result }

    static func attach(to stream: YamuxStreamChannel) -> Collector {
        let promise = stream.eventLoop.makePromise(of: Outcome.self)
        let bytes = NIOLockedValueBox<[UInt8]>([])
        stream.setEventHandler { event in
            switch event {
            case .data(let buffer):
                bytes.withLockedValue { $0.append(contentsOf: buffer.readableBytesView) }
                stream.consumed(buffer.readableBytes)
            case .endOfInput, .closed:
                promise.succeed(Outcome(bytes: bytes.withLockedValue { $0 }, endedCleanly: true))
            case .reset:
                promise.succeed(Outcome(bytes: bytes.withLockedValue { $0 }, endedCleanly: false))
            }
        }
        return Collector(result: promise.futureResult)
    }
}

/// Server behaviour: read to EOF, answer the SHA-256 hex, close.
enum Sink {
    static func attach(to stream: YamuxStreamChannel) -> Bool {
        let hasher = NIOLockedValueBox(SHA256())
        stream.setEventHandler { event in
            switch event {
            case .data(let buffer):
                hasher.withLockedValue { $0.update(data: Array(buffer.readableBytesView)) }
                stream.consumed(buffer.readableBytes)
            case .endOfInput:
                let digest = hasher.withLockedValue { $0.finalize() }.map { String(format: "%02x", $0) }.joined()
                stream.write(ByteBuffer(string: digest))
                stream.closeWrite()
            case .closed, .reset:
                break
            }
        }
        return true
    }
}

/// Server behaviour: echo every byte (acknowledged only once re-sent), FIN after the peer's.
enum Echo {
    static func attach(to stream: YamuxStreamChannel) -> Bool {
        stream.setEventHandler { event in
            switch event {
            case .data(let buffer):
                let count = buffer.readableBytes
                stream.write(buffer).whenSuccess { stream.consumed(count) }
            case .endOfInput:
                stream.closeWrite()
            case .closed, .reset:
                break
            }
        }
        return true
    }
}
