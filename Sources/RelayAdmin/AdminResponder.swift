import Foundation
import Hummingbird
import Logging
import NIOCore
import RelayCore

/// The request context of the admin listener: Hummingbird's core storage plus the caller's
/// address (for the audit line and the per-IP rate).
public struct AdminRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The TCP peer, `nil` on a Unix socket.
    public let remoteAddress: NIOCore.SocketAddress?
    /// The connection (for the peer credentials of a Unix-socket caller).
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
        if case .unixDomainSocket = source.channel.localAddress {
            remoteAddress = nil
        } else {
            remoteAddress = source.channel.remoteAddress
        }
    }
}

/// `struct ucred` (pid, uid, gid) as SO_PEERCRED fills it.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = .max
    var gid: UInt32 = .max
}

/// The admin API of DESIGN §7 v3 as one Hummingbird responder: Bearer authentication, routing
/// (404/405 from `AdminRoute`), JSON bodies checked field by field, the JSON error shape, and
/// one `admin` audit line per call (never the token or a body).
public struct AdminResponder: HTTPResponder {
    public typealias Context = AdminRequestContext

    /// Bodies larger than this are refused with 400.
    public static let maximumBodyBytes = 64 * 1024
    /// Rows per page of `GET /admin/allocations` at most.
    public static let maximumPageSize = 1000

    let backend: any AdminBackend
    let logger: Logger

    public init(backend: any AdminBackend, logger: Logger) {
        self.backend = backend
        self.logger = logger
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        var caller = context.remoteAddress.map { "tcp:\($0.ipAddress ?? "?")" } ?? "unix"
        var peerUID: UInt32?
        if context.remoteAddress == nil {
            peerUID = await Self.peerUID(context.channel)
            caller = "unix:uid=\(peerUID.map(String.init) ?? "?")"
        }
        let response: Response
        do {
            response = try await authorizedResponse(request, context: context, peerUID: peerUID)
        } catch {
            response = Self.errorResponse(error)
        }
        backend.adminCallCompleted(method: request.method.rawValue, path: request.uri.path, status: response.status.code, caller: caller)
        let elapsedMilliseconds = ((ContinuousClock.now - started) / .milliseconds(1) * 1000).rounded() / 1000
        logger.notice("admin", metadata: [
            "event": "admin", "method": "\(request.method.rawValue)", "path": "\(request.uri.path)",
            "status": "\(response.status.code)", "caller": "\(caller)", "duration_ms": "\(elapsedMilliseconds)",
        ])
        return response
    }

    private func authorizedResponse(_ request: Request, context: Context, peerUID: UInt32?) async throws(AdminError) -> Response {
        if context.remoteAddress == nil {
            // The Unix socket: no token; the caller's uid must be the relay's or root.
            guard let uid = peerUID, uid == 0 || uid == getuid() else {
                throw AdminError(403, "forbidden", "this socket admits only the relay's user and root")
            }
        } else if let remote = context.remoteAddress {
            let address = Self.addressBytes(remote)
            guard let expected = backend.currentToken(),
                  let presented = Self.bearerToken(request.headers[.authorization]),
                  Self.constantTimeEqual(Array(presented.utf8), Array(expected.utf8))
            else {
                _ = await backend.chargeFailedAuthentication(address: address)
                throw AdminError(401, "unauthorized", "a valid Authorization: Bearer token is required")
            }
            if await backend.isOverRate(address: address) {
                throw AdminError(429, "rate_limited", "too many attempts from this address; try again later")
            }
        }
        switch AdminRoute.match(method: request.method.rawValue, path: request.uri.path) {
        case .notFound:
            throw AdminError(404, "not_found", "no such path")
        case .methodNotAllowed(let allowed):
            var response = Self.json(["error": "method not allowed (allowed: \(allowed.joined(separator: ", ")))", "code": "method_not_allowed"],
                                     status: .methodNotAllowed)
            response.headers[.allow] = allowed.joined(separator: ", ")
            return response
        case .route(let route):
            return try await handle(route, request)
        }
    }

    // MARK: Routes

    private func handle(_ route: AdminRoute, _ request: Request) async throws(AdminError) -> Response {
        switch route {
        case .listAllocations:
            return try await listAllocations(request.uri.queryParameters)
        case .allocation(let text):
            let id = try Self.allocationID(text)
            guard let allocation = await backend.allocation(id) else { throw AdminError(404, "not_found", "no live allocation \(id)") }
            return Self.encoded(allocation)
        case .terminateAllocation(let text):
            let id = try Self.allocationID(text)
            guard await backend.terminate(id) else { throw AdminError(404, "not_found", "no live allocation \(id)") }
            return Self.json(["ended": true])
        case .stats:
            return Self.encoded(await backend.stats())
        case .createRevocation:
            let body = try await Self.jsonObject(request, allowed: ["allocation_id", "signer_key", "until"])
            let target: RevocationList.Target
            switch (body["allocation_id"], body["signer_key"]) {
            case (let id?, nil):
                guard let text = id as? String else { throw AdminError(400, "bad_request", "allocation_id: must be a string") }
                target = .allocation(try Self.allocationID(text, field: "allocation_id"))
            case (nil, let key?):
                guard let text = key as? String, let signer = SignerKey(base64url: text) else {
                    throw AdminError(400, "bad_request", "signer_key: not base64url of 32 bytes")
                }
                target = .signer(signer)
            default:
                throw AdminError(400, "bad_request", "give exactly one of allocation_id and signer_key")
            }
            let until = try Self.unsigned(body, field: "until")
            return Self.encoded(try await backend.revoke(target, until: until), status: .created)
        case .listRevocations:
            return Self.encoded(["revocations": await backend.revocations()])
        case .deleteRevocation(let text):
            guard let target = RevocationList.Target(text: text) else {
                throw AdminError(400, "bad_request", "not an allocation id (32 hex digits) or a signer key (base64url of 32 bytes)")
            }
            guard try await backend.unrevoke(target) else { throw AdminError(404, "not_found", "no revocation for \(text)") }
            return Self.json(["deleted": true])
        case .listBlocklist:
            return Self.encoded(["blocklist": await backend.blocklist()])
        case .addBlocklist:
            let body = try await Self.jsonObject(request, allowed: ["cidr", "ttl", "reason"])
            guard let cidr = body["cidr"] as? String else { throw AdminError(400, "bad_request", "cidr: required, a string") }
            var ttl: UInt64?
            if let value = body["ttl"] {
                guard let text = value as? String, let seconds = Self.durationSeconds(text), seconds > 0 else {
                    throw AdminError(400, "bad_request", "ttl: a duration such as \"30m\" or \"1h\"")
                }
                ttl = seconds
            }
            var reason: String?
            if let value = body["reason"] {
                guard let text = value as? String, text.utf8.count <= 256 else {
                    throw AdminError(400, "bad_request", "reason: a string of at most 256 bytes")
                }
                reason = text
            }
            return Self.encoded(try await backend.block(cidr: cidr, ttlSeconds: ttl, reason: reason), status: .created)
        case .deleteBlocklist(let cidr):
            guard await backend.unblock(cidr: cidr) else { throw AdminError(404, "not_found", "no API block-list entry \(cidr)") }
            return Self.json(["deleted": true])
        case .config:
            return Self.encoded(backend.effectiveConfiguration())
        case .setLogLevel:
            let body = try await Self.jsonObject(request, allowed: ["level"])
            guard let level = body["level"] as? String, backend.setLogLevel(level) else {
                throw AdminError(400, "bad_request", "level: one of trace, debug, info, notice, warning, error, critical")
            }
            return Self.json(["level": level])
        case .events:
            return eventStream()
        }
    }

    private func listAllocations(_ query: Parameters) async throws(AdminError) -> Response {
        var limit = 100
        if let text = query.get("limit") {
            guard let value = Int(text), value >= 1, value <= Self.maximumPageSize else {
                throw AdminError(400, "bad_request", "limit: 1 to \(Self.maximumPageSize)")
            }
            limit = value
        }
        let state = query.get("state").flatMap { $0.isEmpty ? nil : $0 }
        if let state, !["waiting", "paired", "peer_gone"].contains(state) {
            throw AdminError(400, "bad_request", "state: waiting, paired or peer_gone")
        }
        let signer = query.get("signer").flatMap { $0.isEmpty ? nil : $0 }
        if let signer, SignerKey(base64url: signer) == nil { throw AdminError(400, "bad_request", "signer: not base64url of 32 bytes") }
        // The cursor is the last id of the previous page: ids are listed in order.
        var after = ""  // every id is greater
        if let cursor = query.get("cursor"), !cursor.isEmpty {
            guard cursor.utf8.count == 32, AllocationID(hex: cursor) != nil else { throw AdminError(400, "bad_request", "cursor: not a cursor of this API") }
            after = cursor.lowercased()
        }
        let matching = await backend.allocations()
            .filter { (state == nil || $0.state == state) && (signer == nil || $0.signerKey == signer) && $0.id > after }
            .sorted { $0.id < $1.id }
        let page = Array(matching.prefix(limit))
        let next: String? = matching.count > limit ? page.last?.id : nil
        return Self.encoded(AllocationPage(allocations: page, nextCursor: next))
    }

    private struct AllocationPage: Encodable {
        var allocations: [AdminAllocation]
        var nextCursor: String?
        enum CodingKeys: String, CodingKey { case allocations, nextCursor = "next_cursor" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(allocations, forKey: .allocations)
            try c.encode(nextCursor, forKey: .nextCursor)
        }
    }

    /// Server-sent events: one `data:` line per event, a comment line every 15 s to keep
    /// proxies from closing an idle stream.
    private func eventStream() -> Response {
        let events = backend.subscribeEvents()
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await writer.write(ByteBuffer(string: ": zrc-relay events\n\n"))
            for await event in events {
                try await writer.write(ByteBuffer(string: "data: \(event)\n\n"))
            }
            try await writer.finish(nil)
        })
    }

    // MARK: Parsing helpers

    /// The uid of the process at the other end of a Unix-socket connection (SO_PEERCRED).
    static func peerUID(_ channel: any Channel) async -> UInt32? {
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET), name: NIOBSDSocket.Option(rawValue: SO_PEERCRED))
        guard let credentials = try? await future.get(), credentials.uid != .max else { return nil }
        return credentials.uid
    }

    static func bearerToken(_ header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }

    /// Equal length and bytes, in time that depends only on the lengths.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }

    static func addressBytes(_ address: NIOCore.SocketAddress) -> [UInt8] {
        switch address {
        case .v4(let v4): return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6): return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        default: return []
        }
    }

    static func allocationID(_ text: String, field: String = "id") throws(AdminError) -> AllocationID {
        guard text.utf8.count == 32, let id = AllocationID(hex: text) else {
            throw AdminError(400, "bad_request", "\(field): not an allocation id (32 hex digits)")
        }
        return id
    }

    /// A whole, non-negative number field (`until`), read with JSONDecoder so that `true`,
    /// `1.5` or `"soon"` are refused.
    static func unsigned(_ body: [String: Any], field: String) throws(AdminError) -> UInt64? {
        guard let value = body[field] else { return nil }
        struct Box: Decodable { let value: UInt64 }
        guard JSONSerialization.isValidJSONObject(["value": value]),
              let data = try? JSONSerialization.data(withJSONObject: ["value": value]),
              !(value is Bool), !(value is String),
              let box = try? JSONDecoder().decode(Box.self, from: data)
        else { throw AdminError(400, "bad_request", "\(field): Unix seconds (a whole number)") }
        return box.value
    }

    /// `90s`, `30m`, `1h`, `2d` → seconds.
    static func durationSeconds(_ text: String) -> UInt64? {
        guard let unit = text.last, let value = UInt64(text.dropLast()) else { return nil }
        let scale: UInt64
        switch unit {
        case "s": scale = 1
        case "m": scale = 60
        case "h": scale = 3600
        case "d": scale = 86_400
        default: return nil
        }
        let (seconds, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : seconds
    }

    /// The body as a JSON object whose keys are all in `allowed`.
    static func jsonObject(_ request: Request, allowed: Set<String>) async throws(AdminError) -> [String: Any] {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maximumBodyBytes)
        } catch {
            throw AdminError(400, "bad_request", "body: larger than \(maximumBodyBytes) bytes or unreadable")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)), let fields = object as? [String: Any] else {
            throw AdminError(400, "bad_request", "body: not a JSON object")
        }
        if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw AdminError(400, "bad_request", "\(unknown.prefix(64)): unknown field")
        }
        return fields
    }

    // MARK: Responses

    static func errorResponse(_ error: any Error) -> Response {
        guard let error = error as? AdminError else {
            return json(["error": "internal error", "code": "internal"], status: .internalServerError)
        }
        var response = json(["error": error.message, "code": error.code], status: HTTPResponse.Status(code: error.status))
        if error.status == 401 { response.headers[.wwwAuthenticate] = "Bearer" }
        return response
    }

    static func json(_ object: [String: any Sendable], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func encoded(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else {
            return json(["error": "internal error", "code": "internal"], status: .internalServerError)
        }
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
