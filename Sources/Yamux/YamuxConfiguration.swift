/// Limits and timers of a ``YamuxSession``. Every default is explained in `YamuxDefaults`.
public struct YamuxConfiguration: Hashable, Sendable {
    /// The receive window of each stream in bytes: how much unread data the peer may send
    /// ahead of the application. Values below 256 KiB are raised to 256 KiB, the initial
    /// window the spec fixes. Default 256 KiB.
    public var receiveWindow: UInt32

    /// The most streams open at once, in both directions together. Beyond it, the peer's
    /// SYN is answered with RST and ``YamuxSession/openStream()`` throws. Default 1024.
    public var maximumStreams: Int

    /// The most inbound streams announced but not yet accepted by the application. Beyond
    /// it the peer's SYN is answered with RST. Default 256.
    public var acceptBacklog: Int

    /// The largest Data frame this side sends; longer writes are split. Default 64 KiB.
    public var maximumOutboundDataFrameLength: Int

    /// How often to send a keepalive ping, or `nil` to send none. Default 30 s.
    public var keepAliveInterval: Duration?

    /// How long a ping may go unanswered. A keepalive ping that times out ends the session;
    /// an application ping that times out is reported. Default 10 s.
    public var keepAliveTimeout: Duration

    /// The most of our pings awaiting an answer at once. Default 16.
    public var maximumOutstandingPings: Int

    /// Control frames (pings to answer, resets, refused or late stream frames, empty
    /// window updates and data frames) the peer may send at once before the budget
    /// refills; beyond it the session ends with GoAway(protocol error). Default 1000.
    public var controlFrameBurst: Int

    /// How fast the control-frame budget refills, per second. Default 200.
    public var controlFramesPerSecond: Int

    /// Creates a configuration.
    /// - Parameters:
    ///   - receiveWindow: Per-stream receive window (at least 256 KiB).
    ///   - maximumStreams: Concurrent streams limit.
    ///   - acceptBacklog: Inbound streams awaiting accept limit.
    ///   - maximumOutboundDataFrameLength: Largest Data frame sent.
    ///   - keepAliveInterval: Keepalive period, `nil` to disable.
    ///   - keepAliveTimeout: Ping answer deadline.
    ///   - maximumOutstandingPings: Unanswered pings limit.
    ///   - controlFrameBurst: Control frames allowed at once.
    ///   - controlFramesPerSecond: Control-frame budget refill rate.
    public init(
        receiveWindow: UInt32 = YamuxDefaults.receiveWindow,
        maximumStreams: Int = YamuxDefaults.maximumStreams,
        acceptBacklog: Int = YamuxDefaults.acceptBacklog,
        maximumOutboundDataFrameLength: Int = YamuxDefaults.maximumOutboundDataFrameLength,
        keepAliveInterval: Duration? = YamuxDefaults.keepAliveInterval,
        keepAliveTimeout: Duration = YamuxDefaults.keepAliveTimeout,
        maximumOutstandingPings: Int = YamuxDefaults.maximumOutstandingPings,
        controlFrameBurst: Int = YamuxDefaults.controlFrameBurst,
        controlFramesPerSecond: Int = YamuxDefaults.controlFramesPerSecond
    ) {
        self.receiveWindow = receiveWindow
        self.maximumStreams = maximumStreams
        self.acceptBacklog = acceptBacklog
        self.maximumOutboundDataFrameLength = maximumOutboundDataFrameLength
        self.keepAliveInterval = keepAliveInterval
        self.keepAliveTimeout = keepAliveTimeout
        self.maximumOutstandingPings = maximumOutstandingPings
        self.controlFrameBurst = controlFrameBurst
        self.controlFramesPerSecond = controlFramesPerSecond
    }

    /// The configuration with every value brought into its valid range.
    var normalized: YamuxConfiguration {
        var copy = self
        copy.receiveWindow = max(self.receiveWindow, YamuxDefaults.initialStreamWindow)
        copy.maximumStreams = max(self.maximumStreams, 1)
        copy.acceptBacklog = max(self.acceptBacklog, 1)
        copy.maximumOutboundDataFrameLength = min(max(self.maximumOutboundDataFrameLength, 1), Int(UInt32.max))
        if let interval = self.keepAliveInterval, interval <= .zero {
            copy.keepAliveInterval = nil
        }
        copy.keepAliveTimeout = max(self.keepAliveTimeout, .zero)
        copy.maximumOutstandingPings = max(self.maximumOutstandingPings, 1)
        copy.controlFrameBurst = max(self.controlFrameBurst, 1)
        copy.controlFramesPerSecond = max(self.controlFramesPerSecond, 0)
        return copy
    }
}
