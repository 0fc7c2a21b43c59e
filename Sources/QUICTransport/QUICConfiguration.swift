/// How a `QUICEndpoint` behaves: TLS material, timeouts, address validation and queue bounds.
///
/// Every field has a default that suits a relay on a 1500-byte-MTU network; the relay's own
/// configuration layer maps its TOML keys onto these.
public struct QUICConfiguration: Sendable {
    /// Send runs of equal-sized packets to one destination as one UDP GSO message when the
    /// kernel supports it (it is probed). Default on.
    public var segmentationOffload = true

    /// How this endpoint acknowledges packets that carry only datagrams.
    public enum AckPolicy: Sendable, Hashable {
        /// The relay's: an ACK at once after 8 unacknowledged ack-eliciting packets, else held
        /// up to 20 ms. A relayed stream of datagrams needs ACKs for congestion control only,
        /// never for retransmission, and every ACK is a packet and a system-call slot; the
        /// peer still gets one well within max_ack_delay (25 ms).
        case coalescing
        /// An ordinary peer's (RFC 9000 §13.2.2): an ACK after every second ack-eliciting
        /// packet, else within max_ack_delay (25 ms; held 24 ms, one timer granularity of
        /// RFC 9002 short, so that the ACK does not race the sender's probe timeout on a path
        /// with no RTT). `client bench` uses it by default so the relay is measured against
        /// peers that acknowledge as real ones do.
        case standard

        /// Ack-eliciting packets after which the ACK goes at once (ngtcp2's `ack_thresh`).
        var threshold: Int {
            switch self {
            case .coalescing: 8
            case .standard: 2
            }
        }

        /// How long the ACK of a datagram-only packet may be held, in nanoseconds.
        var holdNanoseconds: UInt64 {
            switch self {
            case .coalescing: ConnectionLifecycle.ackCoalescingNanoseconds
            case .standard: 24_000_000
            }
        }
    }

    /// When the server demands address validation with a Retry packet.
    public enum RetryPolicy: Sendable, Hashable {
        /// Never send Retry.
        case never
        /// Always send Retry to a client that has no valid token.
        case always
        /// Send Retry only under load: while new Initials exceed `acceptRate` per second, or
        /// while `autoRetryHalfOpenThreshold` handshakes are incomplete.
        case auto
    }

    /// The ALPN protocol both sides must agree on; a handshake without it fails.
    public var alpn: String = "zrc-relay/1"
    /// PEM certificate chain (server role).
    public var certificatePath: String?
    /// PEM private key (server role).
    public var privateKeyPath: String?
    /// PEM file of trusted CAs for the client role; `nil` means the server certificate is not verified.
    public var trustedCAPath: String?
    /// QUIC `max_idle_timeout` transport parameter; 0 disables the idle timeout.
    public var maxIdleTimeout: Duration = .seconds(30)
    /// How often an otherwise silent connection sends a PING (holds NAT bindings); `nil` = never.
    public var keepAliveInterval: Duration? = .seconds(15)
    /// How long a handshake may take before the attempt is dropped.
    public var handshakeTimeout: Duration = .seconds(10)
    /// Address validation with Retry (server role).
    public var retryPolicy: RetryPolicy = .auto
    /// Connections created per second, all sources together, in every retry mode (beyond it:
    /// Retry for unvalidated addresses under `auto`/`always`, stateless refusal for the
    /// rest); 0 = no limit. `security.accept_rate`.
    public var acceptRate: Int = 500
    /// Handshakes in progress at once, all sources together; beyond it new Initials are
    /// refused. 1000 × ~50 KB of ngtcp2 and GnuTLS state bounds a never-completing flood to
    /// ~50 MB.
    public var maxHalfOpenHandshakes: Int = 1000
    /// Under `.auto`: from this many incomplete handshakes on, unvalidated clients get a Retry
    /// (a completed handshake takes one RTT, so a hundred in flight is already a burst).
    public var autoRetryHalfOpenThreshold: Int = 100
    /// The `max_datagram_frame_size` transport parameter we advertise (frame type + length + payload).
    public var maxDatagramFrameSize: Int = 65535
    /// Datagrams that may wait for congestion control or pacing, per connection.
    public var datagramQueueCapacity: Int = 128
    /// How long a datagram may wait in that queue before it is dropped.
    public var datagramQueueMaxAge: Duration = .milliseconds(100)
    /// The largest datagram payload the endpoint accepts into a send queue.
    public var maxDatagramPayload: Int = 1500
    /// Bidirectional streams a client may open (stream 0 is the control stream).
    public var maxBidirectionalStreams: Int = 1
    /// Flow-control window of each stream and of the connection, in bytes.
    public var streamWindow: Int = 256 * 1024
    /// Secret for stateless reset tokens and Retry tokens; random per process when `nil`.
    public var staticSecret: [UInt8]?
    /// Packets received per `recvmmsg` call and sent per `sendmmsg` call.
    public var batchSize: Int = 64
    /// How often the delegate's `endpointDidTick(_:)` runs on the loop thread; `nil` = never.
    public var tickInterval: Duration? = nil
    /// How packets that carry only datagrams are acknowledged.
    public var ackPolicy: AckPolicy = .coalescing
    /// Try UDP GSO on send when the kernel supports it.
    public var useSegmentationOffload: Bool = true

    /// Creates a configuration with the defaults above.
    public init() {}
}
