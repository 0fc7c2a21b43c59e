/// Tracks one stream's receive window: how many bytes the peer may still send, how many
/// were delivered to the application but not yet consumed, and when to grant more.
///
/// Invariant: `window + unconsumed <= targetWindow`. So the bytes a stream holds for a slow
/// reader never exceed the target window, and a peer that sends past ``window`` is caught
/// by ``receiveData(length:streamID:)``. An increment is granted once the application has
/// consumed at least half the target window, as hashicorp/yamux does.
struct YamuxReceiveWindowManager: Hashable, Sendable {
    /// The window the application wants to offer (at least the initial 256 KiB).
    let targetWindow: UInt32

    /// Bytes the peer may still send before it must wait for a WindowUpdate.
    private(set) var window: UInt32

    /// Bytes delivered to the application and not yet reported consumed.
    private(set) var unconsumed: UInt32

    /// Creates a manager whose peer starts with the spec's initial window.
    /// - Parameter targetWindow: The window to offer; raised to the initial window if lower.
    init(targetWindow: UInt32) {
        self.targetWindow = max(targetWindow, YamuxDefaults.initialStreamWindow)
        self.window = YamuxDefaults.initialStreamWindow
        self.unconsumed = 0
    }

    /// Accounts for a received Data payload.
    /// - Throws: `.receiveWindowExceeded` when the peer sent more than its window allows.
    mutating func receiveData(length: UInt32, streamID: UInt32) throws(YamuxError) {
        guard length <= self.window else {
            throw .receiveWindowExceeded(streamID: streamID, length: length, window: self.window)
        }
        self.window -= length
        // Cannot overflow: window + unconsumed <= targetWindow held before the move.
        self.unconsumed += length
    }

    /// Accounts for bytes the application has consumed. Counts beyond what was delivered are
    /// a caller bug: they assert in debug builds and are clamped in release builds.
    mutating func consumed(_ count: Int) {
        guard count > 0 else { return }
        let clamped = UInt32(clamping: count)
        assert(clamped <= self.unconsumed, "consumed \(count) bytes but only \(self.unconsumed) were delivered")
        self.unconsumed -= min(clamped, self.unconsumed)
    }

    /// The increment to send now, if any, added to ``window`` on return.
    ///
    /// - Parameter force: Return the increment even when it is below half the target window
    ///   (used on SYN and ACK, which always carry a WindowUpdate).
    /// - Returns: The delta for a WindowUpdate, or `nil` when none is due.
    mutating func nextIncrement(force: Bool) -> UInt32? {
        let delta = self.targetWindow - self.unconsumed - self.window
        guard force || (delta > 0 && delta >= self.targetWindow / 2) else {
            return nil
        }
        self.window += delta
        return delta
    }
}
