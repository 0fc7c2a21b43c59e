import NIOConcurrencyHelpers
import NIOCore
import YamuxNIO

/// Reads one `\n`-terminated line from a yamux stream (the tunnel hello and its answer).
enum TunnelLineReader {
    /// Succeeds with the line (without `\n`); fails when the stream ends first, the line is
    /// longer than ``TunnelHello/maximumLineLength``, or `timeout` passes.
    static func readLine(from stream: YamuxStreamChannel, timeout: TimeAmount) -> EventLoopFuture<[UInt8]> {
        let loop = stream.eventLoop
        let promise = loop.makePromise(of: [UInt8].self)
        let buffer = NIOLockedValueBox([UInt8]())
        let timer = loop.scheduleTask(in: timeout) { promise.fail(TunnelError.handshakeTimedOut) }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        stream.setEventHandler { event in
            switch event {
            case .data(var bytes):
                let count = bytes.readableBytes
                let line = buffer.withLockedValue { line in
                    line.append(contentsOf: bytes.readBytes(length: count) ?? [])
                    return line
                }
                stream.consumed(count)
                if let newline = line.firstIndex(of: UInt8(ascii: "\n")) {
                    promise.succeed(Array(line[..<newline]))
                } else if line.count > TunnelHello.maximumLineLength {
                    promise.fail(TunnelError.handshakeMalformed("line too long"))
                }
            case .endOfInput, .closed, .reset:
                promise.fail(TunnelError.handshakeMalformed("stream ended before the line"))
            }
        }
        return promise.futureResult
    }
}

/// Errors of the reverse tunnel, with the message shown to the operator.
public enum TunnelError: Error, CustomStringConvertible, Sendable {
    /// The tunnel server could not be reached.
    case serverUnreachable(String, underlying: String)
    /// The server refused our hello (bad token).
    case refused(String)
    /// The hello got no answer in time.
    case handshakeTimedOut
    /// The hello or its answer was not a valid line.
    case handshakeMalformed(String)

    public var description: String {
        switch self {
        case .serverUnreachable(let address, let underlying):
            return "cannot reach the tunnel server at \(address): \(underlying)"
        case .refused(let reason): return "the tunnel server refused this client: \(reason)"
        case .handshakeTimedOut: return "the tunnel handshake timed out"
        case .handshakeMalformed(let why): return "malformed tunnel handshake: \(why)"
        }
    }
}
