import Foundation
import RelayCore
import Synchronization

/// Subscribers of `GET /admin/events`. Publishing never waits: each subscriber has a bounded
/// buffer, and one that falls `bufferSize` events behind is dropped (its stream ends).
final class EventHub: Sendable {
    static let bufferSize = 1024
    static let maximumSubscribers = 64

    private struct State {
        var next = 0
        var subscribers: [Int: AsyncStream<String>.Continuation] = [:]
    }

    private let state = Mutex(State())
    private let subscriberCount = Atomic<Int>(0)

    /// Whether anyone listens (checked before an event is turned into JSON).
    var hasSubscribers: Bool { subscriberCount.load(ordering: .relaxed) > 0 }

    /// A new subscription; when `maximumSubscribers` are listening, a stream that ends at once.
    func subscribe() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingOldest(Self.bufferSize))
        let added = state.withLock { state -> Int? in
            guard state.subscribers.count < Self.maximumSubscribers else { return nil }
            state.next += 1
            state.subscribers[state.next] = continuation
            return state.next
        }
        guard let id = added else {
            continuation.finish()
            return stream
        }
        subscriberCount.add(1, ordering: .relaxed)
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        return stream
    }

    /// Hands one event to every subscriber; a subscriber whose buffer is full is dropped.
    func publish(_ line: String) {
        let slow = state.withLock { state -> [AsyncStream<String>.Continuation] in
            var slow: [AsyncStream<String>.Continuation] = []
            for (_, continuation) in state.subscribers {
                if case .dropped = continuation.yield(line) { slow.append(continuation) }
            }
            return slow
        }
        for continuation in slow { continuation.finish() }
    }

    /// Ends every subscription (shutdown).
    func finishAll() {
        let all = state.withLock { state in Array(state.subscribers.values) }
        for continuation in all { continuation.finish() }
    }

    private func remove(_ id: Int) {
        let removed = state.withLock { $0.subscribers.removeValue(forKey: id) != nil }
        if removed { subscriberCount.subtract(1, ordering: .relaxed) }
    }
}

/// Revocations with their `until`, kept in `auth.revocations_file` when set (rewritten
/// atomically: a temporary file beside it, then rename).
final class RevocationStore: Sendable {
    private let list: Mutex<RevocationList>
    let path: String?

    /// Reads `path` (a missing file is an empty list).
    init(path: String?) throws(RevocationList.FileError) {
        self.path = path
        var initial = RevocationList()
        if let path, FileManager.default.fileExists(atPath: path) {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            initial = try RevocationList(fileText: text)
        }
        list = Mutex(initial)
    }

    var all: [RevocationList.Entry] { list.withLock { $0.all } }

    /// Applies `change` and, when it changed anything, writes the file; on a write failure the
    /// change is undone and the error names the file.
    func update(_ change: (inout RevocationList) -> Void) throws(AdminWriteError) {
        let result: Result<Void, AdminWriteError> = list.withLock { current in
            var next = current
            change(&next)
            guard next != current else { return .success(()) }
            if let path {
                do {
                    try Self.atomicWrite(next.fileText, to: path)
                } catch {
                    return .failure(AdminWriteError(path: path, reason: "\(error)"))
                }
            }
            current = next
            return .success(())
        }
        try result.get()
    }

    static func atomicWrite(_ text: String, to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw AdminWriteError(path: temporary, reason: "cannot create")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw AdminWriteError(path: path, reason: reason)
        }
    }
}

/// A file the admin API could not write.
struct AdminWriteError: Error, CustomStringConvertible {
    var path: String
    var reason: String
    var description: String { "cannot write \(path): \(reason)" }
}

/// Block-list entries added through the admin API, with reason and expiry.
final class APIBlocklist: Sendable {
    struct Entry: Sendable, Equatable {
        var cidr: String
        var reason: String?
        var expiresAt: UInt64?
    }

    private let entries = Mutex<[String: Entry]>([:])

    var all: [Entry] { entries.withLock { $0.values.sorted { $0.cidr < $1.cidr } } }

    func set(_ entry: Entry) { entries.withLock { $0[entry.cidr] = entry } }

    @discardableResult
    func remove(_ cidr: String) -> Bool { entries.withLock { $0.removeValue(forKey: cidr) != nil } }

    /// Entries whose TTL has passed (they are removed here).
    func takeExpired(nowUnix: UInt64) -> [String] {
        entries.withLock { entries in
            let expired = entries.values.filter { ($0.expiresAt ?? .max) <= nowUnix }.map(\.cidr)
            for cidr in expired { entries[cidr] = nil }
            return expired
        }
    }
}
