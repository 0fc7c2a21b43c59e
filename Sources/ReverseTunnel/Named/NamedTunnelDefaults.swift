import NIOCore

/// Every default of named tunnels in one place, each with its reason. The types that use them
/// refer here instead of repeating the numbers.
public enum NamedTunnelDefaults {
    /// DESIGN §11: a request head must be complete within 10 s (408), so a slowloris caller
    /// holds one connection for 10 s at most.
    public static let headTimeout: TimeAmount = .seconds(10)
    /// DESIGN §11: 64 KiB of request head at most (431); real heads are a few KiB.
    public static let maximumHeadLength = 64 * 1024
    /// DESIGN §11: the local service has 30 s to send a response head (504). Counted from the
    /// end of the request, so that a long upload is not late.
    public static let responseTimeout: TimeAmount = .seconds(30)
    /// DESIGN §11: a vanished client's name is kept for it for 30 s.
    public static let holdDuration: Duration = .seconds(30)
    /// Not in DESIGN: a request body that stops arriving for 60 s ends its connection (twice
    /// the response timeout: slow uplinks pause, dead callers do not come back).
    public static let bodyIdleTimeout: TimeAmount = .seconds(60)
    /// Not in DESIGN: unanswered pipelined requests per connection before the caller is no
    /// longer read (browsers pipeline a handful at most; each costs a small record).
    public static let maximumOutstandingRequests = 128
    /// As for the plain tunnel: a client has 10 s to send its hello.
    public static let helloTimeout: TimeAmount = .seconds(10)
    /// DESIGN §11: the client pings every 15 s …
    public static let clientPingInterval: Duration = .seconds(15)
    /// … and counts 10 s without an answer as a dead link.
    public static let clientPingTimeout: Duration = .seconds(10)
    /// DESIGN §11: reconnecting starts after 0.5 s …
    public static let reconnectInitialDelay: Duration = .milliseconds(500)
    /// … and doubles up to 30 s.
    public static let reconnectMaximumDelay: Duration = .seconds(30)
}
