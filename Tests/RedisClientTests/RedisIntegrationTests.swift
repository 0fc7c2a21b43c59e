import Foundation
import Logging
import NIOPosix
import RedisClient
import Synchronization
import NIOSSL
import RelayCore
import Testing

/// A real `redis-server` (Debian's) on a free port of 127.0.0.1, started by the test and
/// stopped by PID.
final class RedisServerProcess: @unchecked Sendable {
    let port: Int
    let process = Process()
    let password: String?

    /// `tls`: certificate and key; the server then listens with TLS only.
    init(password: String? = nil, port: Int? = nil, tls: (cert: String, key: String)? = nil) throws {
        self.port = try port ?? Self.freePort()
        self.password = password
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        var arguments = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                         "--daemonize", "no", "--enable-debug-command", "local"]
        if let tls {
            arguments += ["--port", "0", "--tls-port", "\(self.port)", "--tls-cert-file", tls.cert, "--tls-key-file", tls.key,
                          "--tls-ca-cert-file", tls.cert, "--tls-auth-clients", "no"]
        } else {
            arguments += ["--port", "\(self.port)"]
        }
        if let password { arguments += ["--requirepass", password] }
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready when it accepts a TCP connection and is still running (a server that lost
        // its port to another one exits at once, and the port would answer for the other).
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if Self.accepts(port: self.port) {
                usleep(50_000)
                if process.isRunning { return }
                break
            }
            if !process.isRunning { break }
            usleep(20_000)
        }
        stop()
        throw RedisError.connect("redis-server did not start on port \(self.port)")
    }

    /// Ports handed out by `freePort` in this test process: tests run in parallel, and a
    /// port given back to the kernel may come out of `bind(0)` again for another test.
    private static let handedOut = Mutex<Set<Int>>([])

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }

    var url: RedisURL { try! RedisURL(parsing: password.map { "redis://:\($0)@127.0.0.1:\(port)" } ?? "redis://127.0.0.1:\(port)") }

    static func freePort() throws -> Int {
        for _ in 0..<50 {
            let port = try kernelFreePort()
            if handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw RedisError.connect("no free port")
    }

    private static func kernelFreePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw RedisError.connect("no free port") }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

@Suite(.serialized) struct RedisIntegrationTests {
    static var quiet: Logger {
        var logger = Logger(label: "redis-test")
        logger.logLevel = .critical
        return logger
    }

    @Test func commandsPipeliningErrorsAndDatabases() async throws {
        let server = try RedisServerProcess()
        defer { server.stop() }
        let connection = try await RedisConnection.connect(to: server.url)
        #expect(try await connection.send(["PING"]) == .simpleString("PONG"))
        try await connection.send(["SET", "k", "välue"])
        #expect(try await connection.send(["GET", "k"]).string == "välue")
        #expect(try await connection.send(["GET", "missing"]).isNull)
        await #expect(throws: RedisError.self) { try await connection.send(["INCR", "k"]) }  // not an integer: an error reply
        // 1 000 commands in one write, replies in order.
        let replies = try await connection.pipeline((0..<1000).map { _ in ["INCR", "counter"] })
        #expect(replies == (1...1000).map { RESPValue.integer(Int64($0)) })
        let mixed = try await connection.pipeline([["SET", "a", "1"], ["LPUSH", "a", "x"], ["GET", "a"]])
        if case .error = mixed[1] {} else { Issue.record("the error reply stays in its slot") }
        #expect(mixed[2].string == "1")
        await connection.close()
        // SELECT from the URL.
        let db3 = try await RedisConnection.connect(to: RedisURL(parsing: "redis://127.0.0.1:\(server.port)/3"))
        #expect(try await db3.send(["GET", "k"]).isNull)
        await db3.close()
    }

    @Test func authenticationFromTheURL() async throws {
        let server = try RedisServerProcess(password: "s3cret pw")
        defer { server.stop() }
        let connection = try await RedisConnection.connect(to: RedisURL(parsing: "redis://:s3cret%20pw@127.0.0.1:\(server.port)"))
        #expect(try await connection.send(["PING"]) == .simpleString("PONG"))
        await connection.close()
        do {
            _ = try await RedisConnection.connect(to: RedisURL(parsing: "redis://:wrong@127.0.0.1:\(server.port)"))
            Issue.record("a wrong password connected")
        } catch {
            #expect(!"\(error)".contains("wrong"), "the password is echoed: \(error)")
        }
    }

    @Test func aCallThatTimesOutClosesItsConnection() async throws {
        let server = try RedisServerProcess()
        defer { server.stop() }
        let connection = try await RedisConnection.connect(to: server.url)
        do {
            _ = try await connection.send(["DEBUG", "SLEEP", "1"], timeout: .milliseconds(200))
            Issue.record("no timeout")
        } catch {
            #expect(error == .timeout(command: "DEBUG"))
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!connection.isActive)
    }

    @Test func publishSubscribe() async throws {
        let server = try RedisServerProcess()
        defer { server.stop() }
        let received = Mutex<[[UInt8]]>([])
        let subscriber = try await RedisConnection.connect(to: server.url, onPush: { value in
            if let elements = value.elements, elements.count == 3, let payload = elements[2].bytes {
                received.withLock { $0.append(payload) }
            }
        })
        try await subscriber.subscribe(["zrc:control", "zrc:events"])
        let publisher = try await RedisConnection.connect(to: server.url)
        #expect(try await publisher.send(["PUBLISH", "zrc:control", "one"]) == .integer(1))
        #expect(try await publisher.send(["PUBLISH", "zrc:events", "two"]) == .integer(1))
        let deadline = ContinuousClock.now + .seconds(5)
        while received.withLock({ $0.count }) < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(received.withLock { $0 } == [Array("one".utf8), Array("two".utf8)])
        await subscriber.close()
        await publisher.close()
    }

    /// The server goes away: pending and new calls fail at once (backing off), nothing hangs;
    /// it comes back on the same port and the client reconnects by itself.
    @Test func reconnectsWithBackoffWhenTheServerReturns() async throws {
        let server = try RedisServerProcess()
        let client = RedisClient(url: server.url, timeout: .milliseconds(500),
                                 backoff: ExponentialBackoff(base: .milliseconds(50), cap: .milliseconds(400)), logger: Self.quiet)
        try await client.send(["SET", "x", "1"])
        server.stop()
        var failures = 0
        let started = ContinuousClock.now
        for _ in 0..<20 {
            do {
                try await client.send(["GET", "x"])
            } catch {
                failures += 1
            }
        }
        #expect(failures == 20)
        #expect(ContinuousClock.now - started < .seconds(3))
        let again = try RedisServerProcess(port: server.port)
        defer { again.stop() }
        let deadline = ContinuousClock.now + .seconds(5)
        var back = false
        while !back, ContinuousClock.now < deadline {
            back = (try? await client.send(["PING"])) == .simpleString("PONG")
            if !back { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(back)
        #expect(client.consecutiveFailures == 0)
        await client.close()
    }

    /// `rediss://`: TLS verified against a private CA (the server's certificate is issued by
    /// it, with 127.0.0.1 in its SAN); a client that trusts only the system store is refused.
    @Test func tlsForRediss() async throws {
        let pki = try TestCA()
        let server = try RedisServerProcess(tls: (pki.serverCert, pki.serverKey))
        defer { server.stop() }
        let url = try RedisURL(parsing: "rediss://127.0.0.1:\(server.port)")
        var trusting = TLSConfiguration.makeClientConfiguration()
        trusting.trustRoots = .file(pki.caCert)
        let connection = try await RedisConnection.connect(to: url, tlsConfiguration: trusting)
        try await connection.send(["SET", "secure", "yes"])
        #expect(try await connection.send(["GET", "secure"]).string == "yes")
        await connection.close()
        await #expect(throws: RedisError.self) { _ = try await RedisConnection.connect(to: url) }
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1 it issued (GnuTLS's certtool).
struct TestCA {
    let caCert: String
    let serverCert: String
    let serverKey: String

    init() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zrc-redis-ca-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        caCert = dir + "/ca.pem"
        serverCert = dir + "/server.pem"
        serverKey = dir + "/server.key"
        let caKey = dir + "/ca.key"
        try "cn = zrc test CA\nca\ncert_signing_key\nexpiration_days = 2\n".write(toFile: dir + "/ca.cfg", atomically: true, encoding: .utf8)
        try "cn = 127.0.0.1\nip_address = 127.0.0.1\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 2\n"
            .write(toFile: dir + "/server.cfg", atomically: true, encoding: .utf8)
        try Self.run(["certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", caKey])
        try Self.run(["certtool", "--generate-self-signed", "--load-privkey", caKey, "--template", dir + "/ca.cfg", "--outfile", caCert])
        try Self.run(["certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", serverKey])
        try Self.run(["certtool", "--generate-certificate", "--load-privkey", serverKey, "--load-ca-certificate", caCert,
                      "--load-ca-privkey", caKey, "--template", dir + "/server.cfg", "--outfile", serverCert])
    }

    private static func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw RedisError.connect("certtool failed: \(arguments.joined(separator: " "))") }
    }
}
