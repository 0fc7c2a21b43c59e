import NIOCore
import NIOEmbedded
import NIOHTTP1

/// Finds the request heads in the bytes a public caller sends, with NIOHTTP1's llhttp-based
/// `HTTPRequestDecoder`, so that each head can be checked and rewritten while everything
/// else passes byte for byte (DESIGN §11; docs/TUNNELS.md "How request heads are found").
///
/// The decoder sees every byte, so it keeps track of message boundaries (Content-Length,
/// chunked, no body) across a kept-alive connection. It reports events, not offsets, so the
/// scanner feeds it in slices that end exactly where a boundary can fall:
/// - inside a head, slices end after each empty line (the `\n` of `\r\n` or `\n` alone at
///   the start of a line): a head ends with the first one, so when the decoder reports a
///   head, it ended with the slice just fed (one decoder call for a whole head);
/// - inside a body whose end the decoder must find (chunked), slices end at each `\n`: a
///   chunked body ends with one;
/// - inside a `Content-Length` body, slices end at the body's last byte (one slice per read,
///   so bulk bodies cost one decoder call per read).
///
/// Head bytes are held back (they are replaced by the rewritten head) and bounded by
/// ``maximumHeadLength``; body bytes are returned as they come. After an upgrade request
/// (``ForwardedHead/isUpgrade(_:)``) every further byte is returned raw.
///
/// Not thread-safe: use it on one event loop.
final class HTTPRequestStreamScanner {
    /// What a fed buffer contained, in order.
    enum Event {
        /// A complete request head (its raw bytes were consumed).
        case head(HTTPRequestHead)
        /// Bytes to pass on unchanged (body, or anything after an upgrade).
        case bytes(ByteBuffer)
    }

    /// Why the caller's bytes cannot be forwarded.
    enum Failure: Error, Equatable {
        /// A head longer than ``maximumHeadLength``.
        case headTooLarge
        /// Bytes llhttp refuses.
        case malformed
    }

    /// Where the current line of a head stands (to find empty lines across reads).
    struct LineState: Equatable {
        /// Bytes of the line so far (without its `\n`).
        var length = 0
        /// Whether its first byte was `\r`.
        var startsWithCR = false
    }

    private enum State {
        /// Reading a head; `count` bytes of it so far.
        case head(count: Int, line: LineState)
        /// A body of known length; `remaining` bytes to go.
        case contentLength(remaining: Int, upgradeAfter: Bool)
        /// A body whose end the decoder finds (chunked), or the end of a body-less message.
        case delimited(upgradeAfter: Bool)
        /// After an upgrade: bytes pass unparsed.
        case raw
        /// A failure was reported; nothing more is accepted.
        case failed
    }

    /// The most bytes a head may have.
    let maximumHeadLength: Int
    private var state: State = .head(count: 0, line: LineState())
    private let decoder: EmbeddedChannel

    /// - Parameter maximumHeadLength: DESIGN §11: 64 KiB.
    init(maximumHeadLength: Int = NamedTunnelDefaults.maximumHeadLength) {
        self.maximumHeadLength = maximumHeadLength
        self.decoder = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
    }

    deinit {
        _ = try? decoder.finish(acceptAlreadyClosed: true)
    }

    /// Whether the scanner is inside a request head (or waiting for one): the head timeout
    /// runs then.
    var isReadingHead: Bool {
        if case .head = state { return true }
        return false
    }

    /// Whether a head has begun (some of its bytes arrived).
    var hasPartialHead: Bool {
        if case .head(let count, _) = state { return count > 0 }
        return false
    }

    /// Whether the connection became a raw bridge.
    var isRaw: Bool {
        if case .raw = state { return true }
        return false
    }

    /// Feeds bytes from the caller.
    /// - Returns: What they contained, in order.
    /// - Throws: ``Failure`` on a head too large or bytes the parser refuses; the scanner
    ///   then accepts nothing more.
    func feed(_ input: ByteBuffer) throws(Failure) -> [Event] {
        var input = input
        var events: [Event] = []
        while input.readableBytes > 0 {
            switch state {
            case .failed:
                throw .malformed
            case .raw:
                events.append(.bytes(input))
                return events
            case .contentLength(let remaining, let upgradeAfter):
                guard remaining > 0 else { throw fail(.malformed) }
                let count = min(remaining, input.readableBytes)
                guard let slice = input.readSlice(length: count) else { throw fail(.malformed) }
                events.append(.bytes(slice))
                state = .contentLength(remaining: remaining - count, upgradeAfter: upgradeAfter)
                try decode(slice, into: &events)
            case .head(let count, var line):
                let slice = Self.sliceToEmptyLine(&input, line: &line)
                let (total, overflow) = count.addingReportingOverflow(slice.readableBytes)
                guard !overflow, total <= maximumHeadLength else { throw fail(.headTooLarge) }
                state = .head(count: total, line: line)
                try decode(slice, into: &events)
            case .delimited:
                let slice = Self.sliceToNewline(&input)
                events.append(.bytes(slice))
                try decode(slice, into: &events)
                // A delimited message can only end at a `\n`; an end anywhere else would mean
                // the slice also held bytes of the next message, already passed on unchanged.
                if case .head(let count, _) = state, count == 0, slice.readableBytesView.last != UInt8(ascii: "\n") {
                    throw fail(.malformed)
                }
            }
        }
        return events
    }

    /// Feeds the decoder and turns its parts into events and state changes.
    private func decode(_ slice: ByteBuffer, into events: inout [Event]) throws(Failure) {
        do {
            try decoder.writeInbound(slice)
        } catch {
            throw fail(.malformed)
        }
        while true {
            let part: HTTPServerRequestPart?
            do {
                part = try decoder.readInbound(as: HTTPServerRequestPart.self)
            } catch {
                throw fail(.malformed)
            }
            guard let part else { break }
            switch part {
            case .head(let head):
                guard case .head = state else { throw fail(.malformed) }
                events.append(.head(head))
                let upgrade = ForwardedHead.isUpgrade(head)
                if let length = Self.contentLength(head), !head.headers.contains(name: "transfer-encoding") {
                    state = length == 0 ? .delimited(upgradeAfter: upgrade) : .contentLength(remaining: length, upgradeAfter: upgrade)
                } else {
                    state = .delimited(upgradeAfter: upgrade)
                }
            case .body:
                break  // passed on raw by `feed`
            case .end:
                switch state {
                case .contentLength(_, let upgradeAfter), .delimited(let upgradeAfter):
                    state = upgradeAfter ? .raw : .head(count: 0, line: LineState())
                case .head, .raw, .failed:
                    throw fail(.malformed)
                }
            }
        }
    }

    private func fail(_ failure: Failure) -> Failure {
        state = .failed
        return failure
    }

    /// Takes bytes up to and including the first `\n` that ends an empty line (or all of them
    /// when there is none), carrying the line's state across reads.
    private static func sliceToEmptyLine(_ input: inout ByteBuffer, line: inout LineState) -> ByteBuffer {
        let view = input.readableBytesView
        var length = view.count
        var offset = 0
        for byte in view {
            offset += 1
            if byte == UInt8(ascii: "\n") {
                let empty = line.length == 0 || (line.length == 1 && line.startsWithCR)
                line = LineState()
                if empty {
                    length = offset
                    break
                }
            } else {
                if line.length == 0 { line.startsWithCR = byte == UInt8(ascii: "\r") }
                line.length &+= 1
            }
        }
        return input.readSlice(length: length) ?? ByteBuffer()
    }

    /// Takes bytes up to and including the first `\n` (or all of them when there is none).
    private static func sliceToNewline(_ input: inout ByteBuffer) -> ByteBuffer {
        let view = input.readableBytesView
        let length = view.firstIndex(of: UInt8(ascii: "\n")).map { view.distance(from: view.startIndex, to: $0) + 1 } ?? view.count
        return input.readSlice(length: length) ?? ByteBuffer()
    }

    /// The body length a head announces, when it is a plain non-negative number.
    private static func contentLength(_ head: HTTPRequestHead) -> Int? {
        let values = head.headers["content-length"].map { Int($0.trimmingASCIIWhitespace()) }
        guard let first = values.first, let length = first, length >= 0, values.allSatisfy({ $0 == length }) else { return nil }
        return length
    }
}
