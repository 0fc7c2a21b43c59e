import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import ReverseTunnel
import Yamux
import YamuxNIO

/// The reverse tunnel's hello: `TunnelHello.check`, `answer`, `refusal` and the line reading
/// that feeds them.
///
/// Input: `options u8 | tokenLength u8 | token | chunkSeed u8 | stream`. The stream is cut into
/// chunks and read into lines the way `TunnelLineReader` does it (first `\n` ends the line; more
/// than `TunnelHello.maximumLineLength` bytes without one fail). `TunnelLineReader` itself is
/// internal to ReverseTunnel and needs a live `YamuxStreamChannel`, so it cannot be called from
/// here; instead, with `options` bit 1, the chunks travel the real path into it: a
/// `YamuxMultiplexer` (server role) on an `EmbeddedChannel`, as Data frames of stream 1, and
/// the line is read from the stream's events. With bit 2 the stream is fed to that multiplexer
/// as raw (hostile) yamux bytes instead, and every inbound stream is read.
///
/// Properties: `check` accepts exactly `HELLO` + (` ` + token), an optional `\r`, or with no
/// token any `HELLO` / `HELLO <anything>`; the client's own `request` line is accepted;
/// `refusal(answer(v))` gives back `v`; `refusal` of any line is `nil` only for `OK`.
public enum TunnelHelloFuzzTarget {
    /// What reading one line gave.
    enum LineResult: Equatable {
        case line([UInt8])
        case tooLong
    }

    /// The accumulation `TunnelLineReader.readLine` does on each data event.
    struct LineAccumulator {
        var buffered: [UInt8] = []
        var result: LineResult?

        mutating func feed(_ bytes: some Sequence<UInt8>) {
            guard result == nil else { return }
            buffered.append(contentsOf: bytes)
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                result = .line(Array(buffered[..<newline]))
            } else if buffered.count > TunnelHello.maximumLineLength {
                result = .tooLong
            }
        }
    }

    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let options = input.u8()
        let tokenBytes = input.take(Int(input.u8()))
        let expectedToken: String? = options & 1 == 0 ? nil : String(decoding: tokenBytes, as: UTF8.self)
        let chunks = FuzzChunks.split(input.rest(), seed: input.u8())

        var direct = LineAccumulator()
        for chunk in chunks { direct.feed(chunk) }
        if case .line(let line) = direct.result {
            checkLine(line, expectedToken: expectedToken)
        }
        checkRequest(token: expectedToken)

        if options & 6 != 0 {
            let viaYamux = readThroughMultiplexer(chunks, raw: options & 4 != 0)
            if options & 4 == 0 {
                fuzzCheck(viaYamux[1] == direct.result, "the line read over yamux differs from the direct one")
            }
            for result in viaYamux.values {
                if case .line(let line) = result { checkLine(line, expectedToken: expectedToken) }
            }
        }
    }

    static func checkLine(_ line: [UInt8], expectedToken: String?) {
        var stripped = line
        if stripped.last == UInt8(ascii: "\r") { stripped.removeLast() }
        let hello = Array("HELLO".utf8)
        let verdict = TunnelHello.check(line: line, expectedToken: expectedToken)
        let expected: Bool
        if let expectedToken, !expectedToken.isEmpty {
            expected = stripped == hello + [UInt8(ascii: " ")] + Array(expectedToken.utf8)
        } else {
            expected = stripped.starts(with: hello) && (stripped.count == hello.count || stripped[hello.count] == UInt8(ascii: " "))
        }
        fuzzCheck((verdict == .accepted) == expected, "check(\(line)) = \(verdict), expected accepted = \(expected)")
        checkAnswer(verdict)

        // The same line read as a server answer.
        if TunnelHello.refusal(inAnswer: line) == nil {
            fuzzCheck(stripped == Array("OK".utf8), "refusal(\(line)) is nil but the line is not OK")
        }
    }

    static func checkAnswer(_ verdict: TunnelHello.Verdict) {
        let answer = Array(TunnelHello.answer(verdict).utf8)
        fuzzCheck(answer.last == UInt8(ascii: "\n"), "answer does not end the line")
        let refusal = TunnelHello.refusal(inAnswer: Array(answer.dropLast()))
        switch verdict {
        case .accepted: fuzzCheck(refusal == nil, "OK read back as a refusal")
        case .denied(let reason): fuzzCheck(refusal == reason, "DENIED \(reason) read back as \(String(describing: refusal))")
        }
    }

    static func checkRequest(token: String?) {
        guard !(token ?? "").utf8.contains(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) else { return }
        let request = Array(TunnelHello.request(token: token).utf8)
        fuzzCheck(request.last == UInt8(ascii: "\n"), "request does not end the line")
        let verdict = TunnelHello.check(line: Array(request.dropLast()), expectedToken: token)
        fuzzCheck(verdict == .accepted, "the client's own hello is refused: \(verdict)")
    }

    /// Runs the chunks through a server-role multiplexer on an embedded channel and reads one
    /// line from every inbound stream. Returns each stream's result.
    static func readThroughMultiplexer(_ chunks: [ArraySlice<UInt8>], raw: Bool) -> [UInt32: LineResult] {
        let channel = EmbeddedChannel()
        let lines = NIOLockedValueBox([UInt32: LineAccumulator]())
        let multiplexer = YamuxMultiplexer(
            role: .server, configuration: YamuxConfiguration(keepAliveInterval: nil), eventLoop: channel.eventLoop
        ) { stream in
            stream.setEventHandler { event in
                guard case .data(let bytes) = event else { return }
                lines.withLockedValue { $0[stream.id, default: LineAccumulator()].feed(bytes.readableBytesView) }
                stream.consumed(bytes.readableBytes)
            }
            return true
        }
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.addHandler(multiplexer)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4444)).wait()
            if !raw {
                var syn = ByteBuffer()
                syn.writeYamuxFrame(.windowUpdate(streamID: 1, flags: .syn))
                try channel.writeInbound(syn)
            }
            for chunk in chunks {
                var bytes = ByteBuffer()
                if raw {
                    bytes.writeBytes(chunk)
                } else {
                    bytes.writeYamuxFrame(.data(streamID: 1, payload: ByteBuffer(bytes: chunk)))
                }
                try channel.writeInbound(bytes)
                channel.embeddedEventLoop.run()
                while (try channel.readOutbound(as: ByteBuffer.self)) != nil {}
            }
        } catch {
            // The session ended (a protocol error closes the channel): keep what was read.
        }
        return lines.withLockedValue { $0.compactMapValues(\.result) }
    }

    public static func seeds() -> [[UInt8]] {
        func seed(_ options: UInt8, token: String, chunkSeed: UInt8, _ stream: String) -> [UInt8] {
            let t = Array(token.utf8)
            return [options, UInt8(t.count)] + t + [chunkSeed] + Array(stream.utf8)
        }
        var seeds = [
            seed(1, token: "s3cret", chunkSeed: 0, "HELLO s3cret\n"),
            seed(1, token: "s3cret", chunkSeed: 1, "HELLO s3cret\r\n"),
            seed(1, token: "s3cret", chunkSeed: 3, "HELLO wrong\n"),
            seed(0, token: "", chunkSeed: 0, "HELLO\n"),
            seed(0, token: "", chunkSeed: 2, "HELLO anything at all\n"),
            seed(0, token: "", chunkSeed: 0, "OK\n"),
            seed(0, token: "", chunkSeed: 0, "DENIED bad token\n"),
            seed(3, token: "s3cret", chunkSeed: 4, "HELLO s3cret\n"),
            seed(2, token: "", chunkSeed: 7, "HELLO\r\n"),
            seed(0, token: "", chunkSeed: 9, String(repeating: "A", count: 4200)),
        ]
        // Raw yamux: the hashicorp client opens stream 1 and sends its hello.
        var raw: [UInt8] = [4, 0, 0]
        raw += YamuxFrameFuzzTarget.hashicorpFrames[0]
        raw += [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x06] + Array("HELLO\n".utf8)
        seeds.append(raw)
        return seeds
    }
}
