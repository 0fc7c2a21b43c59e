import Foundation
import Logging
import Synchronization
import Testing
@testable import QUICTransport
import ZRCTestSupport

/// Records an endpoint's events (called on its loop thread) for tests to wait on.
final class RecordingDelegate: QUICEndpointDelegate, @unchecked Sendable {
    // @unchecked: all state is behind `state`'s lock.
    struct State {
        var established: [UInt64] = []
        var closed: [UInt64: QUICCloseReason] = [:]
        var datagrams: [UInt64: [[UInt8]]] = [:]
        var control: [UInt64: [UInt8]] = [:]
        var admissions = 0
    }

    let state = Mutex(State())
    let echo: Bool
    var admission: QUICAdmission = .accept

    init(echo: Bool = false) { self.echo = echo }

    func endpoint(_ endpoint: QUICEndpoint, shouldAccept remote: TransportAddress) -> QUICAdmission {
        state.withLock { $0.admissions += 1 }
        return admission
    }

    func connectionEstablished(_ connection: QUICConnection) {
        state.withLock { $0.established.append(connection.id) }
    }

    func connection(_ connection: QUICConnection, didReceiveDatagram payload: UnsafeRawBufferPointer) {
        if echo {
            connection.sendDatagram(payload)
        } else {
            let bytes = Array(payload)
            state.withLock { $0.datagrams[connection.id, default: []].append(bytes) }
        }
    }

    func connection(_ connection: QUICConnection, didReceiveControlData bytes: UnsafeRawBufferPointer, fin: Bool) {
        let copy = Array(bytes)
        state.withLock { $0.control[connection.id, default: []].append(contentsOf: copy) }
        if echo { connection.writeControl(copy, fin: fin) }
    }

    func connectionClosed(_ connection: QUICConnection, reason: QUICCloseReason) {
        state.withLock { $0.closed[connection.id] = reason }
    }

    /// Polls `condition` until it holds or `timeout` passes.
    func wait(timeout: Duration = .seconds(10), _ condition: (State) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if state.withLock({ condition($0) }) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return state.withLock { condition($0) }
    }
}

/// A server endpoint and a client endpoint on 127.0.0.1, started and stopped together.
struct QUICPair {
    let server: QUICEndpoint
    let client: QUICEndpoint
    let serverEvents: RecordingDelegate
    let clientEvents: RecordingDelegate

    init(serverEcho: Bool = true, configure: (inout QUICConfiguration) -> Void = { _ in },
         configureClient: (inout QUICConfiguration) -> Void = { _ in }) throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var serverConfig = QUICConfiguration()
        serverConfig.certificatePath = TestCertificate.paths.cert
        serverConfig.privateKeyPath = TestCertificate.paths.key
        serverConfig.retryPolicy = .never
        configure(&serverConfig)
        var clientConfig = QUICConfiguration()
        configureClient(&clientConfig)
        let loopback = TransportAddress(ipAddress: "127.0.0.1", port: 0)!
        server = try QUICEndpoint(role: .server, configuration: serverConfig, bindAddress: loopback, logger: logger)
        client = try QUICEndpoint(role: .client, configuration: clientConfig, bindAddress: loopback, logger: logger)
        serverEvents = RecordingDelegate(echo: serverEcho)
        clientEvents = RecordingDelegate()
        server.delegate = serverEvents
        client.delegate = clientEvents
        try server.start()
        try client.start()
    }

    func stop() {
        client.stop()
        server.stop()
    }

    /// Opens a client connection to the server; returns its handle.
    func connect() async -> UInt64? {
        await onLoop(client) { [server] endpoint in endpoint.connect(to: server.localAddress, serverName: "localhost")?.id }
    }
}

/// Runs `body` on the endpoint's loop thread and returns its result.
func onLoop<T: Sendable>(_ endpoint: QUICEndpoint, _ body: @escaping @Sendable (QUICEndpoint) -> T) async -> T {
    await withCheckedContinuation { continuation in
        endpoint.execute { continuation.resume(returning: body(endpoint)) }
    }
}

/// Resident set size of this process in bytes, from /proc/self/statm.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
