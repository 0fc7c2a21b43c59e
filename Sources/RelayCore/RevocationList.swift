/// Revocations by allocation id or signer key, each until a Unix time (DESIGN §6, §7 v3), and
/// their file form for `auth.revocations_file`. Pure: no clock, no I/O.
///
/// File form, one revocation per line, `#` starts a comment:
///
///     allocation 00112233445566778899aabbccddeeff 1767225600
///     signer 3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA 1767225600
public struct RevocationList: Sendable, Hashable {
    /// What is revoked.
    public enum Target: Hashable, Sendable, CustomStringConvertible {
        case allocation(AllocationID)
        case signer(SignerKey)

        /// 32 hex digits → an allocation id; base64url of 32 bytes → a signer key.
        public init?(text: String) {
            if text.utf8.count == 32, let id = AllocationID(hex: text) {
                self = .allocation(id)
            } else if let key = SignerKey(base64url: text) {
                self = .signer(key)
            } else {
                return nil
            }
        }

        /// The id as 32 hex digits or the key as base64url.
        public var description: String {
            switch self {
            case .allocation(let id): return id.description
            case .signer(let key): return key.base64url
            }
        }
    }

    /// One revocation.
    public struct Entry: Hashable, Sendable {
        public var target: Target
        /// Unix seconds after which the revocation is forgotten (no token it covers is valid
        /// any more by then).
        public var until: UInt64

        public init(target: Target, until: UInt64) {
            self.target = target
            self.until = until
        }
    }

    /// A line of a revocations file that cannot be read.
    public struct FileError: Error, Hashable, Sendable, CustomStringConvertible {
        public var line: Int
        public var problem: String
        public var description: String { "line \(line): \(problem)" }
    }

    private var entries: [Target: UInt64] = [:]

    public init() {}

    /// Adds or extends a revocation (the later `until` wins).
    public mutating func add(_ target: Target, until: UInt64) {
        entries[target] = max(until, entries[target] ?? 0)
    }

    /// Lifts a revocation; `false` when there was none.
    @discardableResult
    public mutating func remove(_ target: Target) -> Bool {
        entries.removeValue(forKey: target) != nil
    }

    public func contains(_ target: Target) -> Bool { entries[target] != nil }

    /// Forgets revocations whose `until` has passed; returns them.
    public mutating func removeExpired(nowUnix: UInt64) -> [Target] {
        let expired = entries.filter { $0.value < nowUnix }.map(\.key)
        for target in expired { entries[target] = nil }
        return expired
    }

    /// Every revocation, in a stable order (allocations, then keys, each by text).
    public var all: [Entry] {
        entries.map { Entry(target: $0.key, until: $0.value) }.sorted { a, b in
            switch (a.target, b.target) {
            case (.allocation, .signer): return true
            case (.signer, .allocation): return false
            default: return a.target.description < b.target.description
            }
        }
    }

    public var count: Int { entries.count }

    // MARK: File form

    /// The file text for these revocations.
    public var fileText: String {
        var text = "# zrc-relay revocations: allocation <hex id> <until unix> | signer <base64url key> <until unix>\n"
        for entry in all {
            switch entry.target {
            case .allocation(let id): text += "allocation \(id) \(entry.until)\n"
            case .signer(let key): text += "signer \(key.base64url) \(entry.until)\n"
            }
        }
        return text
    }

    /// Parses a revocations file.
    public init(fileText: String) throws(FileError) {
        for (index, raw) in fileText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            guard fields.count == 3 else {
                throw FileError(line: index + 1, problem: "expected `allocation|signer <id-or-key> <until>`")
            }
            guard let until = UInt64(fields[2]) else {
                throw FileError(line: index + 1, problem: "until must be Unix seconds")
            }
            switch fields[0] {
            case "allocation":
                guard fields[1].utf8.count == 32, let id = AllocationID(hex: String(fields[1])) else {
                    throw FileError(line: index + 1, problem: "not an allocation id (32 hex digits)")
                }
                add(.allocation(id), until: until)
            case "signer":
                guard let key = SignerKey(base64url: String(fields[1])) else {
                    throw FileError(line: index + 1, problem: "not a signer key (base64url of 32 bytes)")
                }
                add(.signer(key), until: until)
            default:
                throw FileError(line: index + 1, problem: "unknown kind '\(fields[0].prefix(32))' (allocation or signer)")
            }
        }
    }
}
