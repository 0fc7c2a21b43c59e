/// A monotonic time in nanoseconds, passed into the core by its caller (the core never reads
/// a clock). The QUIC loop already has this value for every batch, so using it costs nothing
/// per datagram; tests pass fixed values.
public struct RelayInstant: Hashable, Comparable, Sendable {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func < (a: Self, b: Self) -> Bool { a.nanoseconds < b.nanoseconds }

    /// `self + d`, saturating.
    public func advanced(by d: Duration) -> RelayInstant {
        let (sum, overflow) = nanoseconds.addingReportingOverflow(d.wholeNanoseconds)
        return RelayInstant(nanoseconds: overflow ? .max : sum)
    }

    /// `self − earlier`, or zero if `earlier` is later.
    public func since(_ earlier: RelayInstant) -> Duration {
        nanoseconds > earlier.nanoseconds ? .nanoseconds(Int64(clamping: nanoseconds - earlier.nanoseconds)) : .zero
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to 0…UInt64.max.
    var wholeNanoseconds: UInt64 {
        let (s, a) = components
        guard s >= 0 else { return 0 }
        let (ns, o1) = UInt64(s).multipliedReportingOverflow(by: 1_000_000_000)
        let (total, o2) = ns.addingReportingOverflow(UInt64(a / 1_000_000_000))
        return o1 || o2 ? .max : total
    }

    /// Whole seconds, clamped at zero.
    var wholeSeconds: UInt64 { UInt64(max(0, components.seconds)) }
}
