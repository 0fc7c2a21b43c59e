// yamux-bench: the Swift side of tools/bench/yamux (not shipped; a benchmark helper).
//
//   yamux-bench sink --listen PORT                               yamux server: each stream read to EOF,
//                                                                answered with its SHA-256 hex, closed
//   yamux-bench source --connect HOST:PORT --bytes N --streams K  yamux client: K streams of N bytes,
//                                                                half-closed, answers checked; "ok MiB/s"
//
// Both speak to hashicorp/yamux's peer in tools/interop/yamux-peer (`-behavior sink|source -reply sha256`).
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import YamuxNIO

func hex(_ digest: some Sequence<UInt8>) -> String { digest.map { String(format: "%02x", $0) }.joined() }

func value(_ flag: String, in arguments: [String]) -> String? {
    guard let i = arguments.firstIndex(of: flag), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}

func usage() -> Never {
    FileHandle.standardError.write(Data("usage: yamux-bench sink --listen PORT | source --connect HOST:PORT --bytes N --streams K\n".utf8))
    exit(2)
}

let arguments = Array(CommandLine.arguments.dropFirst())
let group = MultiThreadedEventLoopGroup.singleton

switch arguments.first {
case "sink":
    guard let port = value("--listen", in: arguments).flatMap(Int.init) else { usage() }
    let server = try await ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let multiplexer = YamuxMultiplexer(role: .server, eventLoop: channel.eventLoop) { stream in
                    let hasher = NIOLockedValueBox(SHA256())
                    stream.setEventHandler { event in
                        switch event {
                        case .data(let bytes):
                            hasher.withLockedValue { h in bytes.withUnsafeReadableBytes { h.update(bufferPointer: $0) } }
                            stream.consumed(bytes.readableBytes)
                        case .endOfInput:
                            stream.write(ByteBuffer(string: hex(hasher.withLockedValue { $0.finalize() })))
                            stream.closeWrite()
                        case .closed, .reset:
                            break
                        }
                    }
                    return true
                }
                try channel.pipeline.syncOperations.addHandler(multiplexer)
            }
        }
        .bind(host: "127.0.0.1", port: port).get()
    print("ready \(server.localAddress?.port ?? 0)")
    try await server.closeFuture.get()

case "source":
    guard let target = value("--connect", in: arguments), let colon = target.lastIndex(of: ":"),
          let port = Int(target[target.index(after: colon)...]) else { usage() }
    let host = String(target[..<colon])
    let size = value("--bytes", in: arguments).flatMap(Int.init) ?? 64 << 20
    let streams = value("--streams", in: arguments).flatMap(Int.init) ?? 1
    let slot = NIOLockedValueBox<YamuxMultiplexer?>(nil)
    let connecting = ClientBootstrap(group: group)
        .channelOption(.socketOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let multiplexer = YamuxMultiplexer(role: .client, eventLoop: channel.eventLoop) { _ in false }
                slot.withLockedValue { $0 = multiplexer }
                try channel.pipeline.syncOperations.addHandler(multiplexer)
            }
        }
        .connect(host: host, port: port)
    guard let channel = try? await connecting.get() else {
        FileHandle.standardError.write(Data("yamux-bench: cannot connect to \(target)\n".utf8))
        exit(1)
    }
    guard let multiplexer = slot.withLockedValue({ $0 }) else { exit(1) }
    let started = ContinuousClock.now
    let ok = try await sendAll(multiplexer, size: size, streams: streams)
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print(ok ? String(format: "ok %.1f MiB/s", Double(size * streams) / seconds / 1_048_576) : "fail checksum mismatch")
    try? await channel.close()
    exit(ok ? 0 : 1)

default:
    usage()
}

/// Writes `size` random bytes on each of `streams` new streams, half-closes them, and checks
/// every SHA-256 answer.
func sendAll(_ multiplexer: YamuxMultiplexer, size: Int, streams: Int) async throws -> Bool {
    var buffer = ByteBuffer()
    var generator = SystemRandomNumberGenerator()
    for _ in 0..<(256 * 1024 / 8) { buffer.writeInteger(generator.next() as UInt64) }
    let chunk = buffer
    return try await withThrowingTaskGroup(of: Bool.self) { tasks in
        for _ in 0..<streams {
            tasks.addTask {
                let stream = try await multiplexer.openStream().get()
                let reply = NIOLockedValueBox([UInt8]())
                let done = stream.eventLoop.makePromise(of: Void.self)
                stream.setEventHandler { event in
                    switch event {
                    case .data(let bytes):
                        reply.withLockedValue { $0.append(contentsOf: bytes.readableBytesView) }
                        stream.consumed(bytes.readableBytes)
                    case .endOfInput, .closed, .reset:
                        done.succeed(())
                    }
                }
                var hasher = SHA256()
                var left = size
                while left > 0 {
                    let piece = chunk.getSlice(at: 0, length: min(left, chunk.readableBytes)) ?? chunk
                    piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                    try await stream.write(piece).get()
                    left -= piece.readableBytes
                }
                stream.closeWrite()
                try await done.futureResult.get()
                return String(decoding: reply.withLockedValue { $0 }, as: UTF8.self) == hex(hasher.finalize())
            }
        }
        var all = true
        for try await result in tasks { all = all && result }
        return all
    }
}
