/// Every default of the yamux session, with the reason for its value.
@usableFromInline
enum YamuxDefaults {
    /// 256 KiB: the initial stream window of hashicorp/yamux `spec.md` ("Flow Control"),
    /// which both sides assume before any WindowUpdate. A larger receive window is announced
    /// by a WindowUpdate carried on the SYN or ACK, exactly as hashicorp/yamux does.
    @usableFromInline static let initialStreamWindow: UInt32 = 256 * 1024

    /// 256 KiB: matches hashicorp/yamux's `MaxStreamWindowSize` default, so a stream never
    /// holds more than 256 KiB of unread data for a slow reader.
    @usableFromInline static let receiveWindow: UInt32 = initialStreamWindow

    /// 1024 streams: with a 256 KiB window each, one connection can pin at most 256 MiB of
    /// unread data; far above what the fallback (2 streams) or a developer tunnel needs.
    @usableFromInline static let maximumStreams = 1024

    /// 256: hashicorp/yamux's `AcceptBacklog` default (inbound streams not yet accepted).
    @usableFromInline static let acceptBacklog = 256

    /// 64 KiB: large writes are split so one stream cannot hold the connection for a whole
    /// window while other streams wait; 12 bytes of header per 64 KiB is 0.02% overhead.
    @usableFromInline static let maximumOutboundDataFrameLength = 64 * 1024

    /// 30 s: hashicorp/yamux's `KeepAliveInterval`; below common NAT and load balancer idle
    /// timeouts (60 s and more).
    @usableFromInline static let keepAliveInterval: Duration = .seconds(30)

    /// 10 s: hashicorp/yamux's `ConnectionWriteTimeout`, which bounds how long its `Ping`
    /// waits for the answer.
    @usableFromInline static let keepAliveTimeout: Duration = .seconds(10)

    /// 16: application pings plus the keepalive ping that may await an answer at once;
    /// bounds the ping table.
    @usableFromInline static let maximumOutstandingPings = 16

    /// 1000 control frames at once: a tunnel whose 200 concurrent public connections are all
    /// reset when the local service goes down stays far inside it, while a ping, reset or
    /// SYN flood (as HTTP/2 servers see: CVE-2019-9512, -9514, CVE-2023-44487) is cut off
    /// after about a millisecond of work.
    @usableFromInline static let controlFrameBurst = 1000

    /// 200 a second sustained: hashicorp/yamux sends one keepalive ping per 30 s and resets
    /// streams only as its application closes them.
    @usableFromInline static let controlFramesPerSecond = 200
}
