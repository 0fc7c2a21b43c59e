/// Defaults the core needs (DESIGN §2), each with its reason. The configuration layer has the
/// full table; these keep the core usable on its own (tests, library users).
public enum Defaults {
    /// One instance comfortably relays this many pairs on 2 cores.
    public static let maxAllocations = 1000
    /// One device key should not take a tenth of the relay.
    public static let maxAllocationsPerKey = 100
    /// 10 Mbit/s per direction carries a remote-control video stream.
    public static let bandwidthBitsPerSecond: UInt64 = 10_000_000
    /// 1 GB per allocation, both directions together.
    public static let quotaBytes: UInt64 = 1_000_000_000
    /// An allocation lives at most a day; tokens are refreshed within that.
    public static let allocationTimeout: Duration = .seconds(86_400)
    /// A minute for the second peer to arrive.
    public static let pairingTimeout: Duration = .seconds(60)
    /// Half a minute for a side that left to come back (reconnect with backoff fits).
    public static let idleTimeout: Duration = .seconds(30)
    /// free = the defaults, paid = 4×, unlimited = no cap.
    public static let tiers: [Tier: TierLimits] = [
        .free: TierLimits(bandwidthBitsPerSecond: bandwidthBitsPerSecond, quotaBytes: quotaBytes),
        .paid: TierLimits(bandwidthBitsPerSecond: 4 * bandwidthBitsPerSecond, quotaBytes: 4 * quotaBytes),
        .unlimited: TierLimits(bandwidthBitsPerSecond: 0, quotaBytes: 0),
    ]
}
