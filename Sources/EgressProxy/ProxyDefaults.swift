/// Every default of the egress proxy (DESIGN §12), each with its reason, in one place.
public enum ProxyDefaults {
    /// The longest `OPEN`/`OK`/`ERR` line, newline included: `OPEN ` + a 253-byte name + a
    /// port fits with room to spare; anything longer is hostile and resets the stream.
    public static let maximumLineLength = 512
    /// Dial timeout toward a destination (§12).
    public static let dialTimeout: Duration = .seconds(10)
    /// A stream with no byte either way for this long is ended (§12).
    public static let idleTimeout: Duration = .seconds(300)
    /// How long the server waits for the `OPEN` line of a new stream (a stream that says
    /// nothing must not hold a slot of `--max-streams` for long).
    public static let openLineTimeout: Duration = .seconds(10)
    /// How long a TLS handshake may take on the server (a peer that connects and stays silent
    /// must not hold a socket for ever).
    public static let handshakeTimeout: Duration = .seconds(10)
    /// How long the agent waits for an application's complete request head.
    public static let requestHeadTimeout: Duration = .seconds(30)
    /// How long the agent waits for `OK`/`ERR`: longer than the server's dial timeout plus
    /// a name lookup, so the server's own `timeout` answer normally comes first.
    public static let replyTimeout: Duration = .seconds(25)
    /// Streams one agent may have open at once (§12 `--max-streams`).
    public static let maximumStreams = 256
    /// Consecutive dial failures that open a destination's circuit (§12).
    public static let circuitFailureThreshold = 5
    /// How long an open circuit refuses at once before one trial (§12).
    public static let circuitOpenDuration: Duration = .seconds(60)
    /// Destinations the breaker remembers at most: a client dialling many dead addresses
    /// cannot grow the table without bound; the oldest records are forgotten first.
    public static let circuitTableCapacity = 4096
    /// The biggest request head (request line and headers) the agent buffers.
    public static let maximumRequestHeadLength = 64 * 1024
    /// The most header lines in one request head.
    public static let maximumHeaderCount = 128
    /// Reconnect backoff of the agent: 0.5 s doubling to 30 s, with jitter (§12).
    public static let reconnectBase: Duration = .milliseconds(500)
    public static let reconnectCap: Duration = .seconds(30)
    /// Consecutive failed connects after which the agent runs `--discover-cmd` (§12).
    public static let discoverAfterFailures = 3
    /// How long open streams may finish after SIGTERM/SIGINT (§12).
    public static let shutdownGrace: Duration = .seconds(10)
    /// The longest allow-file line, so a huge file line cannot make one entry huge.
    public static let maximumAllowFileLineLength = 1024
    /// The most entries an allow file may hold.
    public static let maximumAllowFileEntries = 10_000
    /// Ports a destination may use when the allow file names none, and without a file (§12).
    public static let defaultPorts: [Int] = [80, 443]
}
