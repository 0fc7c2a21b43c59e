#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RedisClient
import RelayCore
import SharedState

/// The fleet's shared state in Redis (DESIGN §8), under `prefix`:
///
/// | key | type | what |
/// |---|---|---|
/// | `instance:<id>` | hash | heartbeat record, expires after 3 heartbeat intervals |
/// | `instances` | set | instance ids (pruned when their hash is gone) |
/// | `alloc:<id>` | hash | `SharedAllocation` fields; expires 60 s after the allocation |
/// | `allocations` | set | allocation ids (pruned likewise) |
/// | `lease:<id>` | string | owner instance id, `SET NX PX`-style lease renewed by `sync` |
/// | `ended:<id>` | string | present while the id is remembered as ended |
/// | `revocations` | hash | target → until |
/// | `blocklist` | hash | CIDR → `<until or 0> <reason>` |
/// | `control`, `events` | channels | fleet orders; event lines |
///
/// Decisions that must not race (claim, sync, release, terminate) are Lua scripts, so each
/// is one atomic step on the server. Redis Cluster is not supported (keys are built inside
/// scripts).
public final class RedisSharedState: SharedState {
    public var isShared: Bool { true }
    public let prefix: String
    private let client: RedisClient
    private let url: RedisURL
    private let tlsConfiguration: TLSConfiguration?
    private let timeout: Duration
    private let reconnectCap: Duration
    private let logger: Logger

    /// - Parameter reconnectCap: the longest wait between reconnection attempts (the relay
    ///   passes its heartbeat interval, so it notices a returning Redis within about one).
    public init(url: RedisURL, prefix: String, timeout: Duration = .seconds(2), reconnectCap: Duration = .seconds(1),
                tlsConfiguration: TLSConfiguration? = nil, logger: Logger) {
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.tlsConfiguration = tlsConfiguration
        self.logger = logger
        self.reconnectCap = reconnectCap
        self.client = RedisClient(url: url, timeout: timeout, backoff: ExponentialBackoff(base: .milliseconds(100), cap: reconnectCap),
                                  tlsConfiguration: tlsConfiguration, logger: logger)
    }

    public func close() async { await client.close() }

    // MARK: Allocations

    public func claim(_ request: ClaimRequest) async throws(SharedStateError) -> ClaimOutcome {
        let r = request.record
        var arguments = [Self.claimScript, "3", key("alloc:", r.id), key("lease:", r.id), key("ended:", r.id),
                         r.owner, "\(milliseconds(request.leaseTTL))", request.hasRoom ? "1" : "0", prefix,
                         r.signer.base64url, r.peerA.description, r.peerB.description, "\(Self.recordExpiryMilliseconds(r))",
                         r.id.description]
        for (field, value) in r.fields { arguments += [field, value] }
        let reply = try await call("claim", ["EVAL"] + arguments)
        guard let parts = reply.elements, let status = parts.first?.string else { throw SharedStateError("claim", "unexpected reply") }
        switch status {
        case "created": return .created
        case "ended": return .ended
        case "mismatch": return .mismatch
        case "noroom": return .noRoom
        case "owned":
            return .ownedElsewhere(owner: parts.dropFirst().first?.string ?? "", address: parts.dropFirst(2).first?.string ?? "")
        case "takeover":
            guard parts.count > 1, let record = SharedAllocation(fields: Self.hash(parts[1])) else {
                throw SharedStateError("claim", "unreadable allocation record")
            }
            return .takenOver(record)
        default:
            throw SharedStateError("claim", "unexpected status \(status)")
        }
    }

    public func sync(_ records: [SharedAllocation], instance: String, leaseTTL: Duration) async throws(SharedStateError) -> SyncResult {
        var result = SyncResult()
        var start = 0
        while start < records.count {
            let chunk = records[start..<min(records.count, start + 256)]
            start += chunk.count
            var arguments = ["EVAL", Self.syncScript, "0", instance, "\(milliseconds(leaseTTL))", prefix]
            for record in chunk {
                let fields = record.fields
                arguments += [record.id.description, "\(Self.recordExpiryMilliseconds(record))", "\(fields.count * 2)"]
                for (field, value) in fields { arguments += [field, value] }
            }
            let reply = try await call("sync", arguments)
            let parts = reply.elements ?? []
            var index = 0
            while index + 2 < parts.count {
                if let id = parts[index].string.flatMap(AllocationID.init(hex:)) {
                    switch parts[index + 1].string {
                    case "ended": result.endedElsewhere.append(id)
                    case "lost": result.lost[id] = parts[index + 2].string ?? ""
                    default: break
                    }
                }
                index += 3
            }
        }
        return result
    }

    public func end(_ id: AllocationID, until: UInt64) async throws(SharedStateError) {
        var commands: [[String]] = [["DEL", key("alloc:", id)], ["DEL", key("lease:", id)], ["SREM", prefix + "allocations", id.description]]
        let now = Self.unixSeconds()
        if until > now { commands.append(["SET", key("ended:", id), "1", "EX", "\(until - now)"]) }
        _ = try await pipeline("end", commands)
    }

    public func release(_ ids: [AllocationID], instance: String) async throws(SharedStateError) {
        guard !ids.isEmpty else { return }
        var start = 0
        while start < ids.count {
            let chunk = ids[start..<min(ids.count, start + 512)]
            start += chunk.count
            _ = try await call("release", ["EVAL", Self.releaseScript, "0", instance, prefix] + chunk.map(\.description))
        }
    }

    public func terminate(_ id: AllocationID, until: UInt64) async throws(SharedStateError) -> Bool {
        let now = Self.unixSeconds()
        let seconds = until > now ? until - now : 0
        let reply = try await call("terminate", ["EVAL", Self.terminateScript, "0", prefix, id.description, "\(seconds)"])
        if case .integer(let n) = reply { return n == 1 }
        return false
    }

    public func allocations() async throws(SharedStateError) -> [SharedAllocation] {
        let members = try await call("list", ["SMEMBERS", prefix + "allocations"]).elements?.compactMap(\.string) ?? []
        guard !members.isEmpty else { return [] }
        let replies = try await pipeline("list", members.map { ["HGETALL", prefix + "alloc:" + $0] })
        var records: [SharedAllocation] = []
        var gone: [String] = []
        for (member, reply) in zip(members, replies) {
            let fields = Self.hash(reply)
            if fields.isEmpty { gone.append(member) } else if let record = SharedAllocation(fields: fields) { records.append(record) }
        }
        if !gone.isEmpty { _ = try? await client.send(["SREM", prefix + "allocations"] + gone) }
        return records.sorted { $0.id < $1.id }
    }

    public func allocation(_ id: AllocationID) async throws(SharedStateError) -> SharedAllocation? {
        SharedAllocation(fields: Self.hash(try await call("get", ["HGETALL", key("alloc:", id)])))
    }

    // MARK: Instances

    public func heartbeat(_ instance: FleetInstance, ttl: Duration) async throws(SharedStateError) {
        var beat = instance
        beat.lastHeartbeat = Self.unixSeconds() * 1000
        let hash = prefix + "instance:" + instance.id
        _ = try await pipeline("heartbeat", [
            ["HSET", hash] + beat.fields.flatMap { [$0.0, $0.1] },
            ["PEXPIRE", hash, "\(milliseconds(ttl))"],
            ["SADD", prefix + "instances", instance.id],
        ])
    }

    public func instances() async throws(SharedStateError) -> [FleetInstance] {
        let members = try await call("instances", ["SMEMBERS", prefix + "instances"]).elements?.compactMap(\.string) ?? []
        guard !members.isEmpty else { return [] }
        let replies = try await pipeline("instances", members.map { ["HGETALL", prefix + "instance:" + $0] })
        var live: [FleetInstance] = []
        var gone: [String] = []
        for (member, reply) in zip(members, replies) {
            if let instance = FleetInstance(fields: Self.hash(reply)) { live.append(instance) } else { gone.append(member) }
        }
        if !gone.isEmpty { _ = try? await client.send(["SREM", prefix + "instances"] + gone) }
        return live.sorted { $0.id < $1.id }
    }

    public func leave(instance: String) async throws(SharedStateError) {
        _ = try await pipeline("leave", [["DEL", prefix + "instance:" + instance], ["SREM", prefix + "instances", instance]])
    }

    // MARK: Revocations, block list

    public func addRevocation(_ entry: RevocationList.Entry) async throws(SharedStateError) {
        _ = try await call("revocation", ["EVAL", Self.maxScript, "1", prefix + "revocations", entry.target.description, "\(entry.until)"])
    }

    public func removeRevocation(_ target: RevocationList.Target) async throws(SharedStateError) -> Bool {
        if case .integer(let n) = try await call("revocation", ["HDEL", prefix + "revocations", target.description]) { return n > 0 }
        return false
    }

    public func revocations() async throws(SharedStateError) -> [RevocationList.Entry] {
        let now = Self.unixSeconds()
        var entries: [RevocationList.Entry] = []
        var lapsed: [String] = []
        for (target, until) in Self.hash(try await call("revocation", ["HGETALL", prefix + "revocations"])) {
            guard let parsed = RevocationList.Target(text: target), let until = UInt64(until) else { continue }
            if until <= now { lapsed.append(target) } else { entries.append(.init(target: parsed, until: until)) }
        }
        if !lapsed.isEmpty { _ = try? await client.send(["HDEL", prefix + "revocations"] + lapsed) }
        return entries.sorted { $0.target.description < $1.target.description }
    }

    public func addBlock(_ entry: SharedBlockEntry) async throws(SharedStateError) {
        _ = try await call("blocklist", ["HSET", prefix + "blocklist", entry.cidr, entry.value])
    }

    public func removeBlock(cidr: String) async throws(SharedStateError) -> Bool {
        if case .integer(let n) = try await call("blocklist", ["HDEL", prefix + "blocklist", cidr]) { return n > 0 }
        return false
    }

    public func blocks() async throws(SharedStateError) -> [SharedBlockEntry] {
        let now = Self.unixSeconds()
        var entries: [SharedBlockEntry] = []
        var lapsed: [String] = []
        for (cidr, value) in Self.hash(try await call("blocklist", ["HGETALL", prefix + "blocklist"])) {
            guard let entry = SharedBlockEntry(cidr: cidr, value: value) else { continue }
            if let expires = entry.expiresAt, expires <= now { lapsed.append(cidr) } else { entries.append(entry) }
        }
        if !lapsed.isEmpty { _ = try? await client.send(["HDEL", prefix + "blocklist"] + lapsed) }
        return entries.sorted { $0.cidr < $1.cidr }
    }

    // MARK: Channels

    public func publish(_ message: ControlMessage) async throws(SharedStateError) {
        _ = try await call("publish", ["PUBLISH", prefix + "control", message.text])
    }

    public func publishEvent(_ line: String) async throws(SharedStateError) {
        _ = try await call("events", ["PUBLISH", prefix + "events", line])
    }

    /// A subscriber connection of its own (a subscribed connection cannot send commands),
    /// reconnecting with backoff for as long as the stream is consumed.
    public func controlMessages() -> AsyncStream<ControlMessage> {
        let (stream, continuation) = AsyncStream.makeStream(of: ControlMessage.self, bufferingPolicy: .bufferingNewest(1024))
        let channel = prefix + "control"
        let task = Task { [url, tlsConfiguration, timeout, reconnectCap, logger] in
            let backoff = ExponentialBackoff(base: .milliseconds(100), cap: reconnectCap)
            var failures = 0
            while !Task.isCancelled {
                do {
                    let connection = try await RedisConnection.connect(
                        to: url, timeout: timeout, tlsConfiguration: tlsConfiguration,
                        onPush: { value in
                            guard let parts = value.elements, parts.count >= 3, parts[0].string == "message",
                                  let text = parts[2].string else { return }
                            if let message = ControlMessage(text: text) {
                                continuation.yield(message)
                            } else {
                                logger.notice("unreadable fleet control message ignored", metadata: ["length": "\(text.utf8.count)"])
                            }
                        })
                    try await connection.subscribe([channel], timeout: timeout)
                    failures = 0
                    try? await withTaskCancellationHandler {
                        try await connection.channel.closeFuture.get()
                    } onCancel: {
                        connection.channel.close(promise: nil)
                    }
                } catch {
                    failures += 1
                }
                guard !Task.isCancelled else { break }
                try? await Task.sleep(for: backoff.delay(attempt: failures, unit: Double.random(in: 0..<1)))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: Plumbing

    private func key(_ kind: String, _ id: AllocationID) -> String { prefix + kind + id.description }

    private func milliseconds(_ duration: Duration) -> Int64 { max(1, Int64(duration / .milliseconds(1))) }

    private func call(_ operation: String, _ arguments: [String]) async throws(SharedStateError) -> RESPValue {
        do {
            return try await client.send(arguments, label: arguments.first)
        } catch {
            throw SharedStateError(operation, error.description)
        }
    }

    private func pipeline(_ operation: String, _ commands: [[String]]) async throws(SharedStateError) -> [RESPValue] {
        let replies: [RESPValue]
        do {
            replies = try await client.pipeline(commands)
        } catch {
            throw SharedStateError(operation, error.description)
        }
        for reply in replies {
            if case .error(let message) = reply { throw SharedStateError(operation, message) }
        }
        return replies
    }

    /// A hash reply (RESP2 flat array or RESP3 map) as a dictionary.
    static func hash(_ value: RESPValue) -> [String: String] {
        var result: [String: String] = [:]
        if case .map(let pairs) = value {
            for pair in pairs { if let k = pair.key.string, let v = pair.value.string { result[k] = v } }
            return result
        }
        let elements = value.elements ?? []
        var index = 0
        while index + 1 < elements.count {
            if let k = elements[index].string, let v = elements[index + 1].string { result[k] = v }
            index += 2
        }
        return result
    }

    /// The record lives 60 s past the allocation's expiry (a late reader still finds it ended
    /// rather than unknown).
    static func recordExpiryMilliseconds(_ record: SharedAllocation) -> UInt64 {
        let (ms, overflow) = record.expiresAt.addingReportingOverflow(60).0.multipliedReportingOverflow(by: 1000)
        return overflow ? UInt64(Int64.max) : min(ms, UInt64(Int64.max))
    }

    static func unixSeconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(max(0, ts.tv_sec))
    }

    // MARK: Scripts (Lua 5.1, run atomically by Redis)

    /// KEYS: alloc, lease, ended. ARGV: me, lease ms, room (1/0), prefix, signer, peer a,
    /// peer b, record expiry (Unix ms), id, then the record's field/value pairs.
    static let claimScript = """
        if redis.call('EXISTS', KEYS[3]) == 1 then return {'ended'} end
        local me, ttl, room, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
        if redis.call('EXISTS', KEYS[1]) == 1 then
          local r = redis.call('HMGET', KEYS[1], 'signer', 'peer_a', 'peer_b')
          if r[1] ~= ARGV[5] or not ((r[2] == ARGV[6] and r[3] == ARGV[7]) or (r[2] == ARGV[7] and r[3] == ARGV[6])) then
            return {'mismatch'}
          end
          local owner = redis.call('GET', KEYS[2])
          if owner and owner ~= me then
            local address = redis.call('HGET', prefix .. 'instance:' .. owner, 'public_addr')
            if address then return {'owned', owner, address} end
          end
          if room ~= '1' then return {'noroom'} end
          local all = redis.call('HGETALL', KEYS[1])
          redis.call('SET', KEYS[2], me, 'PX', ttl)
          redis.call('HSET', KEYS[1], 'owner', me)
          return {'takeover', all}
        end
        if room ~= '1' then return {'noroom'} end
        redis.call('HSET', KEYS[1], unpack(ARGV, 10))
        redis.call('PEXPIREAT', KEYS[1], ARGV[8])
        redis.call('SADD', prefix .. 'allocations', ARGV[9])
        redis.call('SET', KEYS[2], me, 'PX', ttl)
        return {'created'}
        """

    /// ARGV: me, lease ms, prefix, then per record: id, record expiry (Unix ms), n, n field/value
    /// strings. Returns id, status (ok, ended, lost), owner address — three per record.
    static let syncScript = """
        local me, ttl, prefix = ARGV[1], ARGV[2], ARGV[3]
        local out = {}
        local i = 4
        while i <= #ARGV do
          local id, expiry, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
          local first, last = i + 3, i + 2 + n
          i = last + 1
          local status, address = 'ok', ''
          if redis.call('EXISTS', prefix .. 'ended:' .. id) == 1 then
            status = 'ended'
          else
            local owner = redis.call('GET', prefix .. 'lease:' .. id)
            if owner and owner ~= me then
              address = redis.call('HGET', prefix .. 'instance:' .. owner, 'public_addr')
              if address then status = 'lost' else address = '' end
            end
          end
          if status == 'ok' then
            local alloc = prefix .. 'alloc:' .. id
            redis.call('SET', prefix .. 'lease:' .. id, me, 'PX', ttl)
            if n > 0 then redis.call('HSET', alloc, unpack(ARGV, first, last)) end
            redis.call('PEXPIREAT', alloc, expiry)
            redis.call('SADD', prefix .. 'allocations', id)
          end
          table.insert(out, id)
          table.insert(out, status)
          table.insert(out, address)
        end
        return out
        """

    /// ARGV: me, prefix, ids… Drops the leases `me` holds.
    static let releaseScript = """
        local me, prefix = ARGV[1], ARGV[2]
        for i = 3, #ARGV do
          local lease = prefix .. 'lease:' .. ARGV[i]
          if redis.call('GET', lease) == me then redis.call('DEL', lease) end
        end
        return 0
        """

    /// ARGV: prefix, id, seconds to remember it as ended (0: not at all). Returns 1 when the
    /// record existed.
    static let terminateScript = """
        local prefix, id, seconds = ARGV[1], ARGV[2], tonumber(ARGV[3])
        local existed = redis.call('DEL', prefix .. 'alloc:' .. id)
        redis.call('DEL', prefix .. 'lease:' .. id)
        redis.call('SREM', prefix .. 'allocations', id)
        if existed == 1 and seconds > 0 then redis.call('SET', prefix .. 'ended:' .. id, '1', 'EX', seconds) end
        return existed
        """

    /// KEYS: hash. ARGV: field, value. Keeps the larger number.
    static let maxScript = """
        local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
        if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
        return 0
        """
}
