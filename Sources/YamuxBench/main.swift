// yamux-bench: the Swift side of tools/bench/yamux (not shipped; a benchmark helper).
//
//   yamux-bench sink --listen PORT                               yamux server: each stream read to EOF,
//                                                                answered with its SHA-256 hex, closed
//   yamux-bench source --connect HOST:PORT --bytes N --streams K  yamux client: K streams of N bytes,
//                                                                half-closed, answers checked; "ok MiB/s"
//     --count (on both): no hashing and fixed bytes; the answer is the byte count (20 digits)
//   yamux-bench echo --listen PORT                               yamux server: every stream echoed
//   yamux-bench pingpong --connect HOST:PORT [--size 64] [--seconds 3]
//                                                                one stream: send, wait for the echo,
//                                                                repeat; "ok N round trips/s"
//
// They speak to hashicorp/yamux's peer in tools/interop/yamux-peer (`-behavior sink|count|echo|source|pingpong`).
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
    FileHandle.standardError.write(Data("""
        usage: yamux-bench sink --listen PORT [--count] | source --connect HOST:PORT --bytes N --streams K [--count]
               | echo --listen PORT | pingpong --connect HOST:PORT [--size 64] [--seconds 3]\n
        """.utf8))
    exit(2)
}

let arguments = Array(CommandLine.arguments.dropFirst())
let group = MultiThreadedEventLoopGroup.singleton

switch arguments.first {
case "sink":
    guard let port = value("--listen", in: arguments).flatMap(Int.init) else { usage() }
    let countOnly = arguments.contains("--count")
    try await serve(port: port) { stream in
        let hasher = NIOLockedValueBox(SHA256())
        let count = NIOLockedValueBox(0)
        stream.setEventHandler { event in
            switch event {
            case .data(let bytes):
                if countOnly {
                    count.withLockedValue { $0 += bytes.readableBytes }
                } else {
                    hasher.withLockedValue { h in bytes.withUnsafeReadableBytes { h.update(bufferPointer: $0) } }
                }
                stream.consumed(bytes.readableBytes)
            case .endOfInput:
                let answer = countOnly ? countAnswer(count.withLockedValue { $0 }) : hex(hasher.withLockedValue { $0.finalize() })
                stream.write(ByteBuffer(string: answer))
                stream.closeWrite()
            case .closed, .reset:
                break
            }
        }
    }

case "echo":
    guard let port = value("--listen", in: arguments).flatMap(Int.init) else { usage() }
    try await serve(port: port) { stream in
        stream.setEventHandler { event in
            switch event {
            case .data(let bytes):
                stream.write(bytes)
                stream.consumed(bytes.readableBytes)
            case .endOfInput:
                stream.closeWrite()
            case .closed, .reset:
                break
            }
        }
    }

case "source":
    guard let target = value("--connect", in: arguments) else { usage() }
    let size = value("--bytes", in: arguments).flatMap(Int.init) ?? 64 << 20
    let streams = value("--streams", in: arguments).flatMap(Int.init) ?? 1
    let countOnly = arguments.contains("--count")
    let (channel, multiplexer) = try await connect(target)
    let started = ContinuousClock.now
    let ok = try await sendAll(multiplexer, size: size, streams: streams, countOnly: countOnly)
    let seconds = secondsSince(started)
    print(ok ? String(format: "ok %.1f MiB/s", Double(size * streams) / seconds / 1_048_576) : "fail answer mismatch")
    try? await channel.close()
    exit(ok ? 0 : 1)

case "pingpong":
    guard let target = value("--connect", in: arguments) else { usage() }
    let size = value("--size", in: arguments).flatMap(Int.init) ?? 64
    let duration = value("--seconds", in: arguments).flatMap(Double.init) ?? 3
    let (channel, multiplexer) = try await connect(target)
    let (trips, seconds) = try await pingPong(multiplexer, size: size, seconds: duration)
    print(String(format: "ok %d round trips of %d bytes in %.2f s (%.0f round trips/s)", trips, size, seconds, Double(trips) / seconds))
    try? await channel.close()
    exit(0)

default:
    usage()
}

/// The answer of a counting sink: the byte count as 20 decimal digits.
func countAnswer(_ count: Int) -> String { String(format: "%020ld", count) }

func secondsSince(_ start: ContinuousClock.Instant) -> Double { (ContinuousClock.now - start) / .seconds(1) }

/// A yamux server on 127.0.0.1:`port` whose every inbound stream `handle` sets up.
func serve(port: Int, handle: @escaping @Sendable (YamuxStreamChannel) -> Void) async throws {
    let server = try await ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let multiplexer = YamuxMultiplexer(role: .server, eventLoop: channel.eventLoop) { stream in
                    handle(stream)
                    return true
                }
                try channel.pipeline.syncOperations.addHandler(multiplexer)
            }
        }
        .bind(host: "127.0.0.1", port: port).get()
    print("ready \(server.localAddress?.port ?? 0)")
    try await server.closeFuture.get()
}

/// A yamux client connection to `target` (HOST:PORT); exits with a message when it fails.
func connect(_ target: String) async throws -> (any Channel, YamuxMultiplexer) {
    guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]) else { usage() }
    let host = String(target[..<colon])
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
    guard let channel = try? await connecting.get(), let multiplexer = slot.withLockedValue({ $0 }) else {
        FileHandle.standardError.write(Data("yamux-bench: cannot connect to \(target)\n".utf8))
        exit(1)
    }
    return (channel, multiplexer)
}

/// Sends `size` bytes on one stream and waits until as many came back, for `seconds`; the
/// round trips and the time they took.
func pingPong(_ multiplexer: YamuxMultiplexer, size: Int, seconds: Double) async throws -> (Int, Double) {
    let stream = try await multiplexer.openStream().get()
    let loop = stream.eventLoop
    let message = ByteBuffer(repeating: 0x5a, count: size)
    let started = ContinuousClock.now
    let deadline = started + .milliseconds(Int(seconds * 1000))
    // Everything runs on the stream's loop: each echo that completes a message sends the next.
    let done = loop.makePromise(of: Int.self)
    try await loop.submit {
        let state = NIOLoopBoundBox((trips: 0, pending: 0), eventLoop: loop)
        stream.setEventHandler { event in
            switch event {
            case .data(let bytes):
                stream.consumed(bytes.readableBytes)
                state.value.pending += bytes.readableBytes
                guard state.value.pending >= size else { return }
                state.value.pending -= size
                state.value.trips += 1
                if ContinuousClock.now < deadline {
                    stream.write(message)
                } else {
                    done.succeed(state.value.trips)
                }
            case .endOfInput, .closed, .reset:
                done.fail(ChannelError.eof)
            }
        }
        stream.write(message)
    }.get()
    let trips = try await done.futureResult.get()
    stream.closeWrite()
    return (trips, secondsSince(started))
}

/// Writes `size` bytes on each of `streams` new streams, half-closes them, and checks every
/// answer: random bytes and SHA-256, or with `countOnly` fixed bytes and the byte count.
func sendAll(_ multiplexer: YamuxMultiplexer, size: Int, streams: Int, countOnly: Bool) async throws -> Bool {
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
                    if !countOnly { piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) } }
                    try await stream.write(piece).get()
                    left -= piece.readableBytes
                }
                stream.closeWrite()
                try await done.futureResult.get()
                let answer = String(decoding: reply.withLockedValue { $0 }, as: UTF8.self)
                return answer == (countOnly ? countAnswer(size) : hex(hasher.finalize()))
            }
        }
        var all = true
        for try await result in tasks { all = all && result }
        return all
    }
}
