import NIOCore
import YamuxNIO

/// Reads one `\n`-terminated line from a yamux stream (the tunnel hello and its answer).
enum TunnelLineReader {
    /// Succeeds with the line (without `\n`); fails when the stream ends first, the line is
    /// longer than ``TunnelHello/maximumLineLength``, or `timeout` passes.
    ///
    /// At most `maximumLineLength + 1` bytes are ever buffered and acknowledged: once the
    /// line is complete or too long, further bytes are neither kept nor consumed, so the
    /// stream's window stays shut and a client cannot push more than its initial window.
    static func readLine(from stream: YamuxStreamChannel, timeout: TimeAmount) -> EventLoopFuture<[UInt8]> {
        let loop = stream.eventLoop
        let promise = loop.makePromise(of: [UInt8].self)
        // Touched only by the stream's event handler, on its loop.
        let buffer = NIOLoopBoundBox.makeBoxSendingValue(LineBuffer(), eventLoop: loop)
        let timer = loop.scheduleTask(in: timeout) { promise.fail(TunnelError.handshakeTimedOut) }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        stream.setEventHandler { event in
            switch event {
            case .data(let bytes):
                let outcome = buffer.value.append(bytes.readableBytesView)
                if outcome.consumed > 0 { stream.consumed(outcome.consumed) }
                switch outcome.result {
                case .needMore, .finished: break
                case .line(let line): promise.succeed(line)
                case .tooLong: promise.fail(TunnelError.handshakeMalformed("line too long"))
                }
            case .endOfInput, .closed, .reset:
                promise.fail(TunnelError.handshakeMalformed("stream ended before the line"))
            }
        }
        return promise.futureResult
    }
}

/// The bytes of one line being read, bounded by ``TunnelHello/maximumLineLength``.
struct LineBuffer: Sendable {
    enum Result: Equatable, Sendable {
        /// No newline yet, within the limit.
        case needMore
        /// The line, without its `\n` (reported once).
        case line([UInt8])
        /// The limit was passed without a newline (reported once).
        case tooLong
        /// A line or a refusal was already reported; bytes are ignored.
        case finished
    }

    private var bytes: [UInt8] = []
    private var done = false

    /// Adds bytes; returns what that decided and how many of them were taken (to be
    /// acknowledged to the peer).
    mutating func append(_ more: some Collection<UInt8>) -> (result: Result, consumed: Int) {
        guard !done else { return (.finished, 0) }
        let room = TunnelHello.maximumLineLength + 1 - bytes.count
        let taken = more.prefix(room)
        if let newline = taken.firstIndex(of: UInt8(ascii: "\n")) {
            bytes.append(contentsOf: taken[..<newline])
            done = true
            return (.line(bytes), taken.distance(from: taken.startIndex, to: newline) + 1)
        }
        bytes.append(contentsOf: taken)
        if bytes.count > TunnelHello.maximumLineLength {
            done = true
            return (.tooLong, taken.count)
        }
        return (.needMore, taken.count)
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
