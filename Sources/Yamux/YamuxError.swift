/// An error raised by the yamux codec or session.
///
/// Two errors compare equal when their ``code`` is equal; the reason text and source
/// location are diagnostics only.
public struct YamuxError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable value callers can switch on.
    public let code: Code

    private let reason: String
    private let file: String
    private let line: UInt

    private init(code: Code, reason: String, file: String, line: UInt) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public static func == (lhs: YamuxError, rhs: YamuxError) -> Bool {
        lhs.code == rhs.code
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.code)
    }

    public var description: String {
        "YamuxError.\(self.code): \(self.reason) (\(self.file):\(self.line))"
    }

    /// Whether this error was caused by the peer breaking the protocol (as opposed to a
    /// local misuse of the API or a local condition such as a keepalive timeout).
    public var isProtocolViolation: Bool {
        switch self.code.backing {
        case .invalidVersion, .invalidFrameType, .frameTooLarge, .invalidStreamID, .duplicateStream,
            .unknownStream, .receiveWindowExceeded, .sendWindowOverflow, .unexpectedFlag, .controlFrameFlood:
            return true
        case .keepaliveTimeout, .sessionClosed, .streamsExhausted, .remoteGoAway, .tooManyStreams,
            .streamNotFound, .streamNotWritable, .tooManyPings, .impossibleSituation:
            return false
        }
    }

    /// The kinds of ``YamuxError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Backing: Hashable, Sendable {
            case invalidVersion
            case invalidFrameType
            case frameTooLarge
            case invalidStreamID
            case duplicateStream
            case unknownStream
            case receiveWindowExceeded
            case sendWindowOverflow
            case unexpectedFlag
            case controlFrameFlood
            case keepaliveTimeout
            case sessionClosed
            case streamsExhausted
            case remoteGoAway
            case tooManyStreams
            case streamNotFound
            case streamNotWritable
            case tooManyPings
            case impossibleSituation
        }

        fileprivate let backing: Backing

        fileprivate init(_ backing: Backing) {
            self.backing = backing
        }

        public var description: String { String(describing: self.backing) }

        /// A frame header carried a version other than 0.
        public static let invalidVersion = Code(.invalidVersion)
        /// A frame header carried a type other than Data, WindowUpdate, Ping or GoAway.
        public static let invalidFrameType = Code(.invalidFrameType)
        /// A Data frame announced more bytes than any receive window allows.
        public static let frameTooLarge = Code(.frameTooLarge)
        /// A stream id of the wrong parity, zero, or not above the previous one.
        public static let invalidStreamID = Code(.invalidStreamID)
        /// A SYN for a stream that is already open.
        public static let duplicateStream = Code(.duplicateStream)
        /// A frame for a stream that was never opened.
        public static let unknownStream = Code(.unknownStream)
        /// The peer sent more Data than the stream's receive window allowed.
        public static let receiveWindowExceeded = Code(.receiveWindowExceeded)
        /// A WindowUpdate would push the send window past 2^32-1.
        public static let sendWindowOverflow = Code(.sendWindowOverflow)
        /// A flag that is not valid in the stream's state (a second FIN).
        public static let unexpectedFlag = Code(.unexpectedFlag)
        /// The peer sent more frames that cost us work but carry no data (pings, resets,
        /// refused or late stream frames, empty window updates) than the budget allows.
        public static let controlFrameFlood = Code(.controlFrameFlood)
        /// A keepalive ping was not answered in time.
        public static let keepaliveTimeout = Code(.keepaliveTimeout)
        /// The session has terminated; no further calls can succeed.
        public static let sessionClosed = Code(.sessionClosed)
        /// No stream ids of our parity are left.
        public static let streamsExhausted = Code(.streamsExhausted)
        /// The peer sent GoAway; it accepts no new streams.
        public static let remoteGoAway = Code(.remoteGoAway)
        /// The configured maximum number of concurrent streams is reached.
        public static let tooManyStreams = Code(.tooManyStreams)
        /// The stream id is not (or no longer) open in this session.
        public static let streamNotFound = Code(.streamNotFound)
        /// The stream's write side is closed (FIN sent) or it was reset.
        public static let streamNotWritable = Code(.streamNotWritable)
        /// Too many of our pings are awaiting an answer.
        public static let tooManyPings = Code(.tooManyPings)
        /// An internal invariant failed; this is a bug in the yamux library.
        public static let impossibleSituation = Code(.impossibleSituation)
    }
}

extension YamuxError {
    @inline(never)
    static func invalidVersion(_ version: UInt8, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .invalidVersion, reason: "frame version \(version)", file: file, line: line)
    }

    @inline(never)
    static func invalidFrameType(_ type: UInt8, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .invalidFrameType, reason: "frame type \(type)", file: file, line: line)
    }

    @inline(never)
    static func frameTooLarge(length: UInt32, limit: UInt32, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .frameTooLarge, reason: "data length \(length) above limit \(limit)", file: file, line: line)
    }

    @inline(never)
    static func invalidStreamID(_ id: UInt32, _ reason: String, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .invalidStreamID, reason: "stream \(id): \(reason)", file: file, line: line)
    }

    @inline(never)
    static func duplicateStream(_ id: UInt32, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .duplicateStream, reason: "SYN for open stream \(id)", file: file, line: line)
    }

    @inline(never)
    static func unknownStream(_ id: UInt32, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .unknownStream, reason: "frame for never opened stream \(id)", file: file, line: line)
    }

    @inline(never)
    static func receiveWindowExceeded(
        streamID: UInt32, length: UInt32, window: UInt32, file: String = #fileID, line: UInt = #line
    ) -> YamuxError {
        YamuxError(
            code: .receiveWindowExceeded,
            reason: "stream \(streamID): \(length) bytes with window \(window)", file: file, line: line)
    }

    @inline(never)
    static func sendWindowOverflow(
        streamID: UInt32, window: UInt32, delta: UInt32, file: String = #fileID, line: UInt = #line
    ) -> YamuxError {
        YamuxError(
            code: .sendWindowOverflow,
            reason: "stream \(streamID): window \(window) + \(delta) overflows", file: file, line: line)
    }

    @inline(never)
    static func unexpectedFlag(_ reason: String, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .unexpectedFlag, reason: reason, file: file, line: line)
    }

    @inline(never)
    public static func keepaliveTimeout(file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .keepaliveTimeout, reason: "keepalive ping unanswered", file: file, line: line)
    }

    @inline(never)
    public static func sessionClosed(file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .sessionClosed, reason: "session terminated", file: file, line: line)
    }

    @inline(never)
    static func streamsExhausted(file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .streamsExhausted, reason: "no stream ids left", file: file, line: line)
    }

    @inline(never)
    static func remoteGoAway(file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .remoteGoAway, reason: "peer sent GoAway", file: file, line: line)
    }

    @inline(never)
    static func tooManyStreams(limit: Int, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .tooManyStreams, reason: "limit \(limit) streams", file: file, line: line)
    }

    @inline(never)
    static func streamNotFound(_ id: UInt32, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .streamNotFound, reason: "stream \(id)", file: file, line: line)
    }

    @inline(never)
    public static func streamNotWritable(_ id: UInt32, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .streamNotWritable, reason: "stream \(id)", file: file, line: line)
    }

    @inline(never)
    static func controlFrameFlood(burst: Int, perSecond: Int, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(
            code: .controlFrameFlood, reason: "more than \(burst) control frames at once or \(perSecond) per second",
            file: file, line: line)
    }

    @inline(never)
    static func tooManyPings(limit: Int, file: String = #fileID, line: UInt = #line) -> YamuxError {
        YamuxError(code: .tooManyPings, reason: "limit \(limit) outstanding pings", file: file, line: line)
    }

    /// An unreachable branch was reached. Asserts in debug builds, returns an error in release builds.
    @inline(never)
    static func impossibleSituation(_ reason: String, file: String = #fileID, line: UInt = #line) -> YamuxError {
        assertionFailure("impossible situation: \(reason) at \(file):\(line)")
        return YamuxError(code: .impossibleSituation, reason: reason, file: file, line: line)
    }
}
