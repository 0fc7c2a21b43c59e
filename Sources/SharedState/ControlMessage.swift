import RelayCore

/// A fleet-wide order on the `<prefix>control` channel (DESIGN §8): every instance applies it
/// to its own allocations and lists. Text form, one line, fields separated by single spaces:
///
///     revoke <32 hex digits | signer base64url> <until>
///     unrevoke <target>
///     terminate <32 hex digits>
///     block <until or 0> <cidr>
///     unblock <cidr>
///
/// An unreadable message is ignored by the receiver (logged), never half-applied.
public enum ControlMessage: Sendable, Hashable {
    case revoke(RevocationList.Target, until: UInt64)
    case unrevoke(RevocationList.Target)
    case terminate(AllocationID)
    case block(SharedBlockEntry)
    case unblock(cidr: String)

    /// Longest message accepted (a CIDR and a reason fit with room to spare).
    public static let maximumLength = 1024

    public var text: String {
        switch self {
        case .revoke(let target, let until): return "revoke \(target) \(until)"
        case .unrevoke(let target): return "unrevoke \(target)"
        case .terminate(let id): return "terminate \(id)"
        case .block(let entry): return "block \(entry.expiresAt ?? 0) \(entry.cidr)"
        case .unblock(let cidr): return "unblock \(cidr)"
        }
    }

    public init?(text: String) {
        guard text.utf8.count <= Self.maximumLength else { return nil }
        let parts = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        switch (parts.first, parts.count) {
        case ("revoke", 3):
            guard let target = RevocationList.Target(text: parts[1]), let until = UInt64(parts[2]) else { return nil }
            self = .revoke(target, until: until)
        case ("unrevoke", 2):
            guard let target = RevocationList.Target(text: parts[1]) else { return nil }
            self = .unrevoke(target)
        case ("terminate", 2):
            guard parts[1].utf8.count == 32, let id = AllocationID(hex: parts[1]) else { return nil }
            self = .terminate(id)
        case ("block", 3):
            guard let until = UInt64(parts[1]), !parts[2].isEmpty else { return nil }
            self = .block(SharedBlockEntry(cidr: parts[2], reason: nil, expiresAt: until == 0 ? nil : until))
        case ("unblock", 2):
            guard !parts[1].isEmpty else { return nil }
            self = .unblock(cidr: parts[1])
        default:
            return nil
        }
    }
}
