/// The admin API's routes (DESIGN §7 v3), matched without I/O: a method and a path become a
/// route, or "unknown path" (404), or "wrong method" (405 with the allowed ones).
public enum AdminRoute: Equatable, Sendable {
    case listAllocations
    case allocation(String)
    case terminateAllocation(String)
    case stats
    case createRevocation
    case listRevocations
    case deleteRevocation(String)
    case listBlocklist
    case addBlocklist
    case deleteBlocklist(String)
    case config
    case setLogLevel
    case events

    /// The outcome of matching a request line.
    public enum Match: Equatable, Sendable {
        case route(AdminRoute)
        case notFound
        case methodNotAllowed(allowed: [String])
    }

    /// Matches `method` and `path` (without the query; percent-escapes still in it, so a CIDR's
    /// `/` arrives as `%2F` inside one segment).
    public static func match(method: String, path: String) -> Match {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        guard segments.first == "admin", segments.count >= 2, segments.count <= 3, !segments.contains("") else { return .notFound }
        let resource = segments[1]
        let item = segments.count == 3 ? percentDecoded(segments[2]) : nil
        if segments.count == 3, item == nil { return .notFound }
        func pick(_ table: [String: AdminRoute]) -> Match {
            if let route = table[method] { return .route(route) }
            return .methodNotAllowed(allowed: table.keys.sorted())
        }
        switch (resource, item) {
        case ("allocations", nil): return pick(["GET": .listAllocations])
        case ("allocations", let id?): return pick(["GET": .allocation(id), "DELETE": .terminateAllocation(id)])
        case ("stats", nil): return pick(["GET": .stats])
        case ("revocations", nil): return pick(["GET": .listRevocations, "POST": .createRevocation])
        case ("revocations", let target?): return pick(["DELETE": .deleteRevocation(target)])
        case ("blocklist", nil): return pick(["GET": .listBlocklist, "POST": .addBlocklist])
        case ("blocklist", let cidr?): return pick(["DELETE": .deleteBlocklist(cidr)])
        case ("config", nil): return pick(["GET": .config])
        case ("log-level", nil): return pick(["PUT": .setLogLevel])
        case ("events", nil): return pick(["GET": .events])
        default: return .notFound
        }
    }

    /// `%XX` escapes decoded (UTF-8); `nil` for a malformed escape or invalid UTF-8.
    static func percentDecoded(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next(), let low = iterator.next(),
                  let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(value)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
