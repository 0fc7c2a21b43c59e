import NIOCore
import NIOHTTP1

/// Entry points for the `named-tunnel` fuzz target (Sources/FuzzTargets), which cannot see
/// the internal parsers of this module. Not used by the server.
public enum TunnelFuzzHooks {
    /// What ``scanRequests(_:maximumHeadLength:)`` saw.
    public struct ScanOutcome: Sendable {
        /// The request heads, in order.
        public var heads: [HTTPRequestHead] = []
        /// The bytes passed on unchanged, concatenated.
        public var passed: [UInt8] = []
        /// Whether the scanner refused the stream (head too large or malformed).
        public var failed = false
    }

    /// Runs the public side's request-head scanner over `chunks`, as if read from a socket.
    public static func scanRequests(_ chunks: [ArraySlice<UInt8>], maximumHeadLength: Int) -> ScanOutcome {
        let scanner = HTTPRequestStreamScanner(maximumHeadLength: maximumHeadLength)
        var outcome = ScanOutcome()
        for chunk in chunks {
            do {
                for event in try scanner.feed(ByteBuffer(bytes: chunk)) {
                    switch event {
                    case .head(let head): outcome.heads.append(head)
                    case .bytes(let bytes): outcome.passed += bytes.readableBytesView
                    }
                }
            } catch {
                outcome.failed = true
                return outcome
            }
        }
        return outcome
    }

    /// Runs the response observer over `chunks` after `requests` were sent; returns the
    /// statuses it reported.
    public static func observeResponses(_ chunks: [ArraySlice<UInt8>], requests: [HTTPRequestHead]) -> [Int] {
        let observer = HTTPResponseObserver()
        for request in requests { observer.requestSent(request) }
        var statuses: [Int] = []
        for chunk in chunks {
            for event in observer.feed(ByteBuffer(bytes: chunk)) {
                if case .head(let status) = event { statuses.append(status) }
            }
        }
        return statuses
    }
}
