#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
internal import CNGTCP2

/// A UDP socket, its thread, and every QUIC connection on it.
///
/// One thread runs the loop: `epoll_wait` → `recvmmsg` a batch → route each packet by
/// destination connection ID → `ngtcp2_conn_read_pkt` (the delegate sees datagrams and control
/// bytes during this) → flush every connection that has something to send into one `sendmmsg`
/// batch → fire due timers. All ngtcp2 calls for all connections happen on that thread, so the
/// two connections of a relayed pair never need a lock or a hand-off. Other threads talk to the
/// endpoint only through `execute(_:)`.
public final class QUICEndpoint: @unchecked Sendable {
    // @unchecked Sendable: every mutable field below `commands` is confined to the loop thread
    // (set up before `start()`, touched afterwards only from the loop or after `join`); the
    // cross-thread parts are `commands` (a Mutex), `stopRequested` (an Atomic) and the eventfd.

    /// Client or server.
    public enum Role: Sendable {
        /// Accepts connections (needs a certificate and key).
        case server
        /// Opens connections with `connect(to:serverName:)`.
        case client
    }

    /// Length of the connection IDs we issue; short-header packets are routed by this many bytes.
    static let connectionIDLength = 16
    /// How long a Retry token stays valid.
    static let retryTokenLifetime: UInt64 = 10_000_000_000
    /// Source ports of reflection/amplification services: packets from them are never answered.
    static let reflectionPorts: Set<UInt16> = [0, 7, 17, 19, 53, 69, 111, 123, 137, 138, 161, 389, 520, 1900, 3702, 5353, 11211]

    public let role: Role
    public let configuration: QUICConfiguration
    /// The bound address (the real port when 0 was asked for).
    public let localAddress: TransportAddress
    /// Receives events on the loop thread. Set before `start()`.
    public var delegate: (any QUICEndpointDelegate)?
    let logger: Logger

    private let socket: UDPSocket
    let tls: TLSContext
    let slabs: DatagramSlabPool
    let sendBatch: SendBatch
    private let receiveBatch: ReceiveBatch
    /// Where ngtcp2 writes the path of each outgoing packet (self-referential, so heap-pinned).
    let writePath: UnsafeMutablePointer<ngtcp2_path_storage>
    private let localStorage: UnsafeMutablePointer<sockaddr_storage>
    private let localLength: socklen_t
    private let secret: [UInt8]
    let datagramMaxAge: UInt64

    private var connectionsByID: [ConnectionIDKey: QUICConnection] = [:]
    private var connectionsByHandle: [UInt64: QUICConnection] = [:]
    private var timers = TimerHeap()
    private var flushQueue: [QUICConnection] = []
    /// Scratch list of `fireTimers` (kept to avoid an allocation per pass).
    private var dueTimers: [QUICConnection] = []
    private var nextHandle: UInt64 = 1
    /// The loop's notion of now (CLOCK_MONOTONIC nanoseconds), refreshed once per batch: a
    /// cheap timestamp for the layer above on the loop thread.
    public private(set) var loopTime: UInt64 = 0
    private var admission: HandshakeAdmission
    /// Server handshakes in progress (created, not yet complete, not yet destroyed).
    public private(set) var halfOpenCount = 0
    /// Connections freed since the allocator last gave memory back (see `returnFreedMemory`).
    private var freedSinceTrim = 0
    private var lastTrim: UInt64 = 0
    private var resetWindowStart: UInt64 = 0
    private var resetsInWindow = 0
    private var nextTick: UInt64 = .max
    private let tickInterval: UInt64

    private let epollFD: Int32
    private let eventFD: Int32
    /// Work for the loop thread; `loopEnded` once the loop has exited (work then runs at once,
    /// serialised by `afterLoop`, so an async call made after `stop()` still returns).
    private let commands = Mutex<(queue: [@Sendable () -> Void], loopEnded: Bool)>(([], false))
    /// The loop's half of the command double buffer (loop thread only).
    private var spareCommands: [@Sendable () -> Void] = []
    private let afterLoop = Mutex<Void>(())
    private let stopRequested = Atomic<Bool>(false)
    private var thread: pthread_t?
    private var loopThread: pthread_t?

    /// Counters, readable from any thread.
    public let counters = QUICEndpointCounters()

    /// Binds the socket. `start()` begins serving.
    public init(role: Role, configuration: QUICConfiguration, bindAddress: TransportAddress, logger: Logger) throws(QUICTransportError) {
        self.role = role
        self.configuration = configuration
        self.logger = logger
        // A server on a wildcard address answers from the address each client reached.
        let socket = try UDPSocket(binding: bindAddress, reportDestination: role == .server)
        self.localAddress = socket.localAddress
        self.socket = socket
        self.tls = try TLSContext(configuration: configuration, isServer: role == .server)
        self.slabs = DatagramSlabPool(maxSlots: 64 * 1024)
        self.sendBatch = SendBatch(capacity: max(8, configuration.batchSize),
                                   segmentationOffload: configuration.segmentationOffload && socket.supportsSegmentationOffload,
                                   namesSource: socket.reportsDestinationAddress)
        self.receiveBatch = ReceiveBatch(capacity: max(8, configuration.batchSize),
                                         destinationsOf: socket.reportsDestinationAddress ? socket.localAddress : nil)
        self.writePath = .allocate(capacity: 1)
        ngtcp2_path_storage_zero(writePath)
        self.localStorage = .allocate(capacity: 1)
        self.localLength = localAddress.write(to: localStorage)
        if let configured = configuration.staticSecret, configured.count >= 16 {
            secret = configured
        } else {
            var random = [UInt8](repeating: 0, count: 32)
            gnutls_rnd(GNUTLS_RND_RANDOM, &random, random.count)
            secret = random
        }
        datagramMaxAge = configuration.datagramQueueMaxAge.nanosecondsClamped
        let mode: HandshakeAdmission.Mode
        switch configuration.retryPolicy {
        case .never: mode = .never
        case .always: mode = .always
        case .auto: mode = .auto
        }
        admission = HandshakeAdmission(mode: mode, acceptRate: configuration.acceptRate,
                                       maximumHalfOpen: configuration.maxHalfOpenHandshakes,
                                       autoRetryHalfOpenThreshold: configuration.autoRetryHalfOpenThreshold)
        tickInterval = configuration.tickInterval.map { max(1_000_000, $0.nanosecondsClamped) } ?? 0
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        eventFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard epollFD >= 0, eventFD >= 0 else { throw .system(.socket, "epoll_create1/eventfd") }
        var socketEvent = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: socket.fd))
        var wakeEvent = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: eventFD))
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, socket.fd, &socketEvent) == 0,
              epoll_ctl(epollFD, EPOLL_CTL_ADD, eventFD, &wakeEvent) == 0
        else { throw .system(.socket, "epoll_ctl") }
    }

    deinit {
        close(epollFD)
        close(eventFD)
        writePath.deallocate()
        localStorage.deallocate()
    }

    // MARK: Thread control

    /// Starts the loop thread.
    public func start() throws(QUICTransportError) {
        guard thread == nil else { return }
        let context = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        let rv = pthread_create(&tid, nil, { argument in
            guard let argument else { return nil }
            let endpoint = Unmanaged<QUICEndpoint>.fromOpaque(argument).takeRetainedValue()
            endpoint.runLoop()
            return nil
        }, context)
        guard rv == 0 else {
            Unmanaged<QUICEndpoint>.fromOpaque(context).release()
            throw .system(.socket, "pthread_create", errno: rv)
        }
        thread = tid
    }

    /// Stops the loop, ends every connection without waiting (the delegate hears
    /// `.endpointStopped`), and waits for the thread to exit. Not callable from the loop thread.
    public func stop() {
        stopRequested.store(true, ordering: .releasing)
        wake()
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
    }

    /// Runs `work` on the loop thread, soon. Safe from any thread. After the loop has ended
    /// (`stop()`), runs it at once on the caller's thread, one work item at a time.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        let queued = commands.withLock { state -> Bool in
            guard !state.loopEnded else { return false }
            state.queue.append(work)
            return true
        }
        guard queued else {
            afterLoop.withLock { _ in work() }
            return
        }
        wake()
    }

    /// Whether the caller is on the loop thread.
    public var isOnLoopThread: Bool {
        guard let loopThread else { return false }
        return pthread_equal(loopThread, pthread_self()) != 0
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(eventFD, &one, 8)
    }

    // MARK: The loop

    private func runLoop() {
        loopThread = pthread_self()
        if tickInterval > 0 { nextTick = MonotonicClock.now() &+ tickInterval }
        var events = [epoll_event](repeating: epoll_event(), count: 8)
        while !stopRequested.load(ordering: .acquiring) {
            let timeout = nextTimeoutNanoseconds()
            let n = events.withUnsafeMutableBufferPointer { CNGTCP2_epoll_wait_ns(epollFD, $0.baseAddress, Int32($0.count), timeout) }
            loopTime = MonotonicClock.now()
            if n > 0 {
                for i in 0..<Int(n) where events[i].data.fd == eventFD {
                    var value: UInt64 = 0
                    _ = read(eventFD, &value, 8)
                }
                receivePackets()
            }
            runCommands()
            fireTimers()
            returnFreedMemory()
            if loopTime >= nextTick {
                nextTick = loopTime &+ tickInterval
                delegate?.endpointDidTick(self)
            }
            flushPending()
        }
        shutdownAll()
    }

    /// How long the loop may sleep: until the earliest timer, rounded up to 250 µs, at most
    /// 1 s. (Whole milliseconds made every sub-millisecond deadline, such as ngtcp2's pacing
    /// on a fast path, a whole millisecond late and capped one connection's send rate.)
    private func nextTimeoutNanoseconds() -> Int64 {
        if !flushQueue.isEmpty { return 0 }
        let earliest = min(timers.earliest ?? .max, nextTick)
        if earliest == .max { return 1_000_000_000 }
        let now = MonotonicClock.now()
        if earliest <= now { return 0 }
        // Rounded up to the wake-up quantum: deadlines that close together share one wake-up.
        let quantum = Self.wakeUpQuantumNanoseconds
        return Int64(min((earliest - now + quantum - 1) / quantum * quantum, 1_000_000_000))
    }

    /// The granularity of the loop's sleeps (see `nextTimeoutNanoseconds`).
    static let wakeUpQuantumNanoseconds: UInt64 = 250_000

    private func runCommands() {
        // Swapped with a spare array that keeps its capacity: copying the queue out and
        // emptying it in place allocated a new buffer on every loop turn (issue 18).
        var pending = spareCommands
        spareCommands = []
        commands.withLock { state in swap(&pending, &state.queue) }
        for work in pending { work() }
        pending.removeAll(keepingCapacity: true)
        spareCommands = pending
    }

    private func receivePackets() {
        var rounds = 0
        while rounds < 16 {
            let n = receiveBatch.receive(from: socket.fd)
            if n == 0 { break }
            loopTime = MonotonicClock.now()
            counters.packetsReceived.add(UInt64(n), ordering: .relaxed)
            for i in 0..<n {
                let packet = receiveBatch.packet(at: i)
                handlePacket(packet.bytes, length: packet.length, source: packet.source,
                             sourceLength: packet.sourceLength, destination: receiveBatch.destination(at: i),
                             truncated: packet.truncated)
            }
            flushPending()
            rounds += 1
            if n < receiveBatch.capacity { break }
        }
    }

    /// Runs the timers that are due. They are collected first and re-armed after: a
    /// connection whose next deadline is still in the past (its work waits for the flush
    /// that follows) is seen again on the next pass of the loop, never in a spin here.
    private func fireTimers() {
        let now = MonotonicClock.now()
        loopTime = now
        dueTimers.removeAll(keepingCapacity: true)
        while let entry = timers.popDue(now: now) {
            guard let connection = connectionsByHandle[entry.handle], connection.scheduledDeadline == entry.deadline else { continue }
            connection.scheduledDeadline = .max
            dueTimers.append(connection)
        }
        for connection in dueTimers where connectionsByHandle[connection.id] != nil {
            connection.handleTimer(now: now)
            if connectionsByHandle[connection.id] != nil { rescheduleTimer(connection) }
        }
        dueTimers.removeAll(keepingCapacity: true)
    }

    /// After many connections were freed (a flood of handshakes timing out, a mass
    /// disconnect), asks glibc to hand free heap pages back to the system, at most once per
    /// second: without it the RSS of a relay that survived a flood stays at its peak.
    private func returnFreedMemory() {
        guard freedSinceTrim >= 64, loopTime &- lastTrim >= 1_000_000_000 else { return }
        freedSinceTrim = 0
        lastTrim = loopTime
        _ = CNGTCP2_malloc_trim()
    }

    /// Flushes every connection that has something to send, then the batch.
    func flushPending() {
        guard !flushQueue.isEmpty else {
            if sendBatch.count > 0 { flushSendBatch() }
            return
        }
        let now = MonotonicClock.now()
        var index = 0
        while index < flushQueue.count {
            let connection = flushQueue[index]
            connection.isQueuedForFlush = false
            connection.flush(now: now)
            if connectionsByHandle[connection.id] != nil { rescheduleTimer(connection) }
            index += 1
        }
        flushQueue.removeAll(keepingCapacity: true)
        flushSendBatch()
    }

    func flushSendBatch() {
        guard sendBatch.count > 0 else { return }
        let before = sendBatch.sendFailures
        counters.packetsSent.add(UInt64(sendBatch.count), ordering: .relaxed)
        sendBatch.flush(to: socket.fd)
        if sendBatch.sendFailures != before {
            counters.sendFailures.add(sendBatch.sendFailures - before, ordering: .relaxed)
        }
    }

    private func shutdownAll() {
        for connection in Array(connectionsByHandle.values) {
            connection.notifyClosed(.endpointStopped)
            destroy(connection)
        }
        flushQueue.removeAll()
        // From here on `execute` runs work itself; what was queued before runs now.
        let pending = commands.withLock { state -> [@Sendable () -> Void] in
            state.loopEnded = true
            let items = state.queue
            state.queue.removeAll()
            return items
        }
        afterLoop.withLock { _ in
            for work in pending { work() }
        }
    }

    // MARK: Connection bookkeeping (loop thread)

    func scheduleFlush(_ connection: QUICConnection) {
        guard !connection.isQueuedForFlush else { return }
        connection.isQueuedForFlush = true
        flushQueue.append(connection)
    }

    func scheduleTimer(_ connection: QUICConnection, deadline: UInt64) {
        guard deadline < connection.scheduledDeadline else { return }
        connection.scheduledDeadline = deadline
        timers.push(deadline: deadline, handle: connection.id)
    }

    func rescheduleTimer(_ connection: QUICConnection) {
        let deadline = connection.nextDeadline
        if deadline != .max { scheduleTimer(connection, deadline: deadline) }
    }

    func route(_ cid: UnsafePointer<ngtcp2_cid>, to connection: QUICConnection) {
        guard let key = ConnectionIDKey(cid: cid) else { return }
        connectionsByID[key] = connection
        connection.registeredIDs.append(key)
    }

    func unroute(_ cid: UnsafePointer<ngtcp2_cid>, from connection: QUICConnection) {
        guard let key = ConnectionIDKey(cid: cid) else { return }
        if connectionsByID[key] === connection { connectionsByID[key] = nil }
        connection.registeredIDs.removeAll { $0 == key }
    }

    /// A server handshake ended (completed, or the connection is going away).
    func handshakeEnded(_ connection: QUICConnection) {
        guard connection.countsAsHalfOpen else { return }
        connection.countsAsHalfOpen = false
        halfOpenCount -= 1
    }

    /// Forgets the connection and frees its resources (after its closing/draining period).
    func destroy(_ connection: QUICConnection) {
        handshakeEnded(connection)
        freedSinceTrim += 1
        connection.notifyClosed(.failed("connection dropped"))
        for key in connection.registeredIDs where connectionsByID[key] === connection {
            connectionsByID[key] = nil
        }
        connection.registeredIDs.removeAll()
        if connectionsByHandle.removeValue(forKey: connection.id) != nil {
            counters.connectionsClosed.add(1, ordering: .relaxed)
        }
        connection.releaseResources()
    }

    func makeResetToken(_ token: UnsafeMutablePointer<UInt8>, for cid: UnsafePointer<ngtcp2_cid>) -> Bool {
        secret.withUnsafeBufferPointer { s in
            ngtcp2_crypto_generate_stateless_reset_token(token, s.baseAddress, s.count, cid) == 0
        }
    }

    /// Appends a ready-made packet to the send batch, leaving from `local` (the address the
    /// packet being answered arrived on).
    func sendRaw(_ bytes: [UInt8], to address: ngtcp2_addr, from local: ngtcp2_addr) {
        guard let destination = address.addr else { return }
        if sendBatch.isFull { flushSendBatch() }
        bytes.withUnsafeBytes {
            sendBatch.append($0, destination: destination, destinationLength: address.addrlen,
                             source: local.addr, sourceLength: local.addrlen)
        }
    }

    /// Live connections (loop thread).
    public var connectionCount: Int { connectionsByHandle.count }

    /// Every live connection (loop thread).
    public var connections: [QUICConnection] { Array(connectionsByHandle.values) }

    /// Looks a connection up by its handle (loop thread).
    public func connection(withID id: UInt64) -> QUICConnection? { connectionsByHandle[id] }

    // MARK: Client role

    /// Opens a connection to `address` (loop thread only). `serverName` goes into SNI and is
    /// checked against the certificate when a trusted CA file is configured.
    public func connect(to address: TransportAddress, serverName: String? = nil) -> QUICConnection? {
        guard role == .client else { return nil }
        let now = MonotonicClock.now()
        let remoteStorage = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
        defer { remoteStorage.deallocate() }
        let remoteLength = address.write(to: remoteStorage)
        let handle = nextHandle
        nextHandle += 1
        let connection = QUICConnection(id: handle, endpoint: self, isServer: false, remote: address)
        let started = localStorage.withMemoryRebound(to: sockaddr.self, capacity: 1) { local in
            remoteStorage.withMemoryRebound(to: sockaddr.self, capacity: 1) { remote in
                var path = ngtcp2_path(
                    local: ngtcp2_addr(addr: local, addrlen: localLength),
                    remote: ngtcp2_addr(addr: remote, addrlen: remoteLength), user_data: nil)
                return connection.startClient(path: &path, serverName: serverName, now: now, tls: tls)
            }
        }
        guard started else {
            connection.closeNotified = true
            connection.releaseResources()
            return nil
        }
        connectionsByHandle[handle] = connection
        counters.connectionsOpened.add(1, ordering: .relaxed)
        scheduleFlush(connection)
        return connection
    }

    // MARK: Incoming packets

    /// Routes one received packet. `destination` is the local address it arrived on when the
    /// socket reports it (wildcard server bind), else the bound address stands in.
    private func handlePacket(_ bytes: UnsafeMutablePointer<UInt8>, length: Int, source: UnsafeMutablePointer<sockaddr>,
                              sourceLength: socklen_t, destination: (address: UnsafeMutablePointer<sockaddr>, length: socklen_t)?,
                              truncated: Bool) {
        guard !truncated, length > 0 else {
            counters.packetsDropped.add(1, ordering: .relaxed)
            return
        }
        guard !Self.reflectionPorts.contains(Self.port(of: source)) else {
            counters.packetsDropped.add(1, ordering: .relaxed)
            return
        }
        localStorage.withMemoryRebound(to: sockaddr.self, capacity: 1) { bound in
            var path = ngtcp2_path(
                local: ngtcp2_addr(addr: destination?.address ?? bound, addrlen: destination?.length ?? localLength),
                remote: ngtcp2_addr(addr: source, addrlen: sourceLength), user_data: nil)
            var versionCID = ngtcp2_version_cid()
            let decoded = ngtcp2_pkt_decode_version_cid(&versionCID, bytes, length, Self.connectionIDLength)
            if decoded == NGTCP2_ERR_VERSION_NEGOTIATION {
                if role == .server { sendVersionNegotiation(versionCID, length: length, path: path) }
                return
            }
            guard decoded == 0, let dcid = versionCID.dcid, let key = ConnectionIDKey(dcid, count: versionCID.dcidlen) else {
                counters.packetsDropped.add(1, ordering: .relaxed)
                return
            }
            if let connection = connectionsByID[key] {
                connection.receive(bytes, length: length, path: &path, now: loopTime)
                return
            }
            guard role == .server else {
                counters.packetsDropped.add(1, ordering: .relaxed)
                return
            }
            if (bytes[0] & 0x80) != 0 {
                acceptNewConnection(bytes, length: length, path: &path)
            } else {
                sendStatelessReset(dcid: dcid, length: length, path: path)
            }
        }
    }

    private static func port(of address: UnsafePointer<sockaddr>) -> UInt16 {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return UInt16(bigEndian: UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in.self).sin_port)
        case AF_INET6:
            return UInt16(bigEndian: UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in6.self).sin6_port)
        default:
            return 0
        }
    }

    private func acceptNewConnection(_ bytes: UnsafeMutablePointer<UInt8>, length: Int, path: UnsafeMutablePointer<ngtcp2_path>) {
        var header = ngtcp2_pkt_hd()
        guard ngtcp2_accept(&header, bytes, length) == 0, let source = path.pointee.remote.addr else {
            counters.packetsDropped.add(1, ordering: .relaxed)
            return
        }
        guard let remote = TransportAddress(sockaddr: source, length: path.pointee.remote.addrlen) else { return }
        switch delegate?.endpoint(self, shouldAccept: remote) ?? .accept {
        case .accept: break
        case .drop:
            counters.connectionsRefused.add(1, ordering: .relaxed)
            return
        case .refuse:
            counters.connectionsRefused.add(1, ordering: .relaxed)
            sendStatelessClose(&header, errorCode: 0x2, path: path)  // CONNECTION_REFUSED
            return
        }
        let now = loopTime
        var originalDCID: ngtcp2_cid?
        var retrySCID: ngtcp2_cid?
        var token: ngtcp2_vec?
        if header.token.len > 0, let tokenBase = header.token.base, tokenBase[0] == UInt8(NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
            var odcid = ngtcp2_cid()
            let verified = secret.withUnsafeBufferPointer { s in
                ngtcp2_crypto_verify_retry_token(&odcid, tokenBase, header.token.len, s.baseAddress, s.count,
                                                 header.version, source, path.pointee.remote.addrlen, &header.dcid,
                                                 Self.retryTokenLifetime, now)
            }
            guard verified == 0 else {
                sendStatelessClose(&header, errorCode: 0xb, path: path)  // INVALID_TOKEN
                return
            }
            originalDCID = odcid
            retrySCID = header.dcid
            token = header.token
        }
        switch admission.decide(validated: token != nil, halfOpen: halfOpenCount, now: now) {
        case .accept:
            break
        case .retry(let rateLimited):
            if rateLimited { counters.acceptLimited.add(1, ordering: .relaxed) }
            sendRetry(&header, path: path, now: now)
            return
        case .refuse:
            counters.acceptLimited.add(1, ordering: .relaxed)
            counters.connectionsRefused.add(1, ordering: .relaxed)
            sendStatelessClose(&header, errorCode: 0x2, path: path)  // CONNECTION_REFUSED
            return
        }
        let handle = nextHandle
        nextHandle += 1
        let connection = QUICConnection(id: handle, endpoint: self, isServer: true, remote: remote)
        guard connection.startServer(header: &header, path: path, originalDCID: originalDCID, retrySCID: retrySCID,
                                     token: token, now: now, tls: tls) else {
            connection.closeNotified = true
            for key in connection.registeredIDs where connectionsByID[key] === connection { connectionsByID[key] = nil }
            connection.releaseResources()
            logger.warning("cannot create QUIC connection", metadata: ["zrc.peer.addr": "\(remote)"])
            return
        }
        connectionsByHandle[handle] = connection
        connection.countsAsHalfOpen = true
        halfOpenCount += 1
        counters.connectionsOpened.add(1, ordering: .relaxed)
        connection.receive(bytes, length: length, path: path, now: now)
    }

    private func sendRetry(_ header: UnsafeMutablePointer<ngtcp2_pkt_hd>, path: UnsafeMutablePointer<ngtcp2_path>, now: UInt64) {
        guard let source = path.pointee.remote.addr else { return }
        var scidBytes = [UInt8](repeating: 0, count: Self.connectionIDLength)
        gnutls_rnd(GNUTLS_RND_NONCE, &scidBytes, scidBytes.count)
        var scid = ngtcp2_cid()
        ngtcp2_cid_init(&scid, scidBytes, scidBytes.count)
        var token = [UInt8](repeating: 0, count: CNGTCP2_max_retry_token_length())
        let tokenLength = secret.withUnsafeBufferPointer { s in
            ngtcp2_crypto_generate_retry_token(&token, s.baseAddress, s.count, header.pointee.version, source,
                                               path.pointee.remote.addrlen, &scid, &header.pointee.dcid, now)
        }
        guard tokenLength > 0 else { return }
        var packet = [UInt8](repeating: 0, count: 256)
        let n = ngtcp2_crypto_write_retry(&packet, packet.count, header.pointee.version, &header.pointee.scid, &scid,
                                          &header.pointee.dcid, token, Int(tokenLength))
        guard n > 0 else { return }
        counters.retriesSent.add(1, ordering: .relaxed)
        sendRaw(Array(packet.prefix(n)), to: path.pointee.remote, from: path.pointee.local)
    }

    private func sendStatelessClose(_ header: UnsafeMutablePointer<ngtcp2_pkt_hd>, errorCode: UInt64,
                                    path: UnsafePointer<ngtcp2_path>) {
        var packet = [UInt8](repeating: 0, count: 256)
        let n = ngtcp2_crypto_write_connection_close(&packet, packet.count, header.pointee.version, &header.pointee.scid,
                                                     &header.pointee.dcid, errorCode, nil, 0)
        guard n > 0 else { return }
        sendRaw(Array(packet.prefix(n)), to: path.pointee.remote, from: path.pointee.local)
    }

    private func sendVersionNegotiation(_ versionCID: ngtcp2_version_cid, length: Int, path: ngtcp2_path) {
        // Only a datagram a client could have sent as its first flight (≥ 1200 bytes) earns an
        // answer; the answer is far smaller, so this never amplifies.
        guard length >= 1200, let dcid = versionCID.dcid, let scid = versionCID.scid else { return }
        var versions: [UInt32] = [UInt32(NGTCP2_PROTO_VER_V1)]
        var packet = [UInt8](repeating: 0, count: 256)
        var unused: UInt8 = 0
        gnutls_rnd(GNUTLS_RND_NONCE, &unused, 1)
        let n = ngtcp2_pkt_write_version_negotiation(&packet, packet.count, unused, scid, versionCID.scidlen,
                                                     dcid, versionCID.dcidlen, &versions, versions.count)
        guard n > 0 else { return }
        counters.versionNegotiationsSent.add(1, ordering: .relaxed)
        sendRaw(Array(packet.prefix(n)), to: path.remote, from: path.local)
    }

    private func sendStatelessReset(dcid: UnsafePointer<UInt8>, length: Int, path: ngtcp2_path) {
        // A reset must be smaller than what triggered it (no loops, no amplification) and at
        // least 22 bytes; and they are rate-limited.
        guard length > 22 else { return }
        let now = loopTime
        if now &- resetWindowStart >= 1_000_000_000 {
            resetWindowStart = now
            resetsInWindow = 0
        }
        guard resetsInWindow < 200 else { return }
        resetsInWindow += 1
        var cid = ngtcp2_cid()
        ngtcp2_cid_init(&cid, dcid, Self.connectionIDLength)
        var token = [UInt8](repeating: 0, count: Int(NGTCP2_STATELESS_RESET_TOKENLEN))
        guard makeResetToken(&token, for: &cid) else { return }
        let total = min(length - 1, 43)
        var random = [UInt8](repeating: 0, count: total - 1 - Int(NGTCP2_STATELESS_RESET_TOKENLEN))
        gnutls_rnd(GNUTLS_RND_NONCE, &random, random.count)
        var packet = [UInt8](repeating: 0, count: 64)
        let n = ngtcp2_pkt_write_stateless_reset(&packet, packet.count, token, random, random.count)
        guard n > 0 else { return }
        counters.statelessResetsSent.add(1, ordering: .relaxed)
        sendRaw(Array(packet.prefix(n)), to: path.remote, from: path.local)
    }
}

extension ConnectionIDKey {
    init?(cid: UnsafePointer<ngtcp2_cid>) {
        let length = cid.pointee.datalen
        let key = withUnsafeBytes(of: cid.pointee.data) { raw -> ConnectionIDKey? in
            guard let base = raw.baseAddress else { return nil }
            return ConnectionIDKey(base.assumingMemoryBound(to: UInt8.self), count: length)
        }
        guard let key else { return nil }
        self = key
    }
}

/// Endpoint-wide counters (atomics: the loop writes, anyone reads).
public final class QUICEndpointCounters: Sendable {
    public let packetsReceived = Atomic<UInt64>(0)
    public let packetsSent = Atomic<UInt64>(0)
    public let packetsDropped = Atomic<UInt64>(0)
    public let sendFailures = Atomic<UInt64>(0)
    public let connectionsOpened = Atomic<UInt64>(0)
    public let connectionsClosed = Atomic<UInt64>(0)
    public let connectionsRefused = Atomic<UInt64>(0)
    public let retriesSent = Atomic<UInt64>(0)
    /// Retries sent because of load and Initials refused by the accept rate or the
    /// half-open cap (`rate_limit_hits_total{kind="accept"}`).
    public let acceptLimited = Atomic<UInt64>(0)
    public let versionNegotiationsSent = Atomic<UInt64>(0)
    public let statelessResetsSent = Atomic<UInt64>(0)
}
