/// Tracks one stream's send window: how many Data bytes the peer currently allows.
///
/// A write that cannot be taken whole marks the stream blocked; the next WindowUpdate that
/// grows the window reports that it reopened, so the application can write the rest.
struct YamuxSendWindowManager: Hashable, Sendable {
    /// Bytes that may be sent now.
    private(set) var window: UInt32

    /// Whether a write was cut short by the window since it last reopened.
    private(set) var isBlocked: Bool

    /// Creates a manager with the spec's initial window.
    init() {
        self.window = YamuxDefaults.initialStreamWindow
        self.isBlocked = false
    }

    /// Takes up to `wanted` bytes of the window.
    /// - Returns: How many bytes may be sent now (at most `wanted`).
    mutating func reserve(_ wanted: Int) -> Int {
        guard wanted > 0 else { return 0 }
        let granted = min(UInt32(clamping: wanted), self.window)
        self.window -= granted
        let grantedCount = Int(clamping: granted)
        if grantedCount < wanted {
            self.isBlocked = true
        }
        return grantedCount
    }

    /// Applies a WindowUpdate from the peer.
    /// - Returns: `true` when a blocked writer may now continue.
    /// - Throws: `.sendWindowOverflow` when the window would pass 2^32-1.
    mutating func receiveIncrement(_ delta: UInt32, streamID: UInt32) throws(YamuxError) -> Bool {
        let (sum, overflow) = self.window.addingReportingOverflow(delta)
        guard !overflow else {
            throw .sendWindowOverflow(streamID: streamID, window: self.window, delta: delta)
        }
        self.window = sum
        guard self.isBlocked, sum > 0 else {
            return false
        }
        self.isBlocked = false
        return true
    }
}
