#if canImport(Glibc)
import Glibc
#endif
internal import CNGTCP2

/// Nanoseconds on CLOCK_MONOTONIC: ngtcp2's `ngtcp2_tstamp` and `QUICEndpoint.loopTime`.
public enum MonotonicClock {
    @inline(__always)
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

extension Duration {
    /// Whole nanoseconds, saturating at `UInt64.max` and at zero.
    var nanosecondsClamped: UInt64 {
        let (seconds, attoseconds) = self.components
        if seconds < 0 { return 0 }
        let (s, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (total, overflow2) = s.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow2 ? .max : total
    }
}
