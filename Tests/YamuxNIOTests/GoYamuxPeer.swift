import Foundation
import NIOConcurrencyHelpers

/// The hashicorp/yamux peer of `tools/interop/yamux-peer`, built once per test run from
/// Debian's Go packages (or taken from `$YAMUX_PEER`), run as a child process.
final class GoYamuxPeer: @unchecked Sendable {
    // @unchecked Sendable: `output` is guarded by `lock`; the Process is only started and
    // waited on.

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    private static let builtPath = NIOLockedValueBox<String?>(nil)

    /// The peer binary: `$YAMUX_PEER`, else built into a temporary folder.
    static func binary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["YAMUX_PEER"], FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        return try builtPath.withLockedValue { cached in
            if let cached { return cached }
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("yamux-peer-\(getpid())").path
            let build = Process()
            build.executableURL = URL(fileURLWithPath: "/bin/sh")
            build.arguments = [repositoryRoot.appendingPathComponent("tools/interop/yamux-peer/build.sh").path, out]
            try build.run()
            build.waitUntilExit()
            guard build.terminationStatus == 0 else { throw PeerError.buildFailed }
            cached = out + "/yamux-peer"
            return out + "/yamux-peer"
        }
    }

    enum PeerError: Error { case buildFailed, noReadyLine(String) }

    private let process = Process()
    private let lock = NIOLock()
    private var output = ""

    /// Starts the peer with `arguments` (stdout captured, stderr passed through).
    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try Self.binary())
        process.arguments = arguments + ["-timeout", "120s"]
        let pipe = Pipe()
        process.standardOutput = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.withLock { self.output += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    /// Everything the peer printed so far.
    var stdout: String { lock.withLock { output } }

    /// Waits for the `ready HOST:PORT` line of `-listen` mode and returns the port.
    func readyPort(timeout: Duration = .seconds(20)) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for line in stdout.split(separator: "\n") where line.hasPrefix("ready ") {
                if let colon = line.lastIndex(of: ":"), let port = Int(line[line.index(after: colon)...]) { return port }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw PeerError.noReadyLine(stdout)
    }

    /// Waits for the process to end; returns its exit status.
    func wait() async -> Int32 {
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        try? await Task.sleep(for: .milliseconds(50))  // let the last output arrive
        return process.terminationStatus
    }

    func terminate() {
        if process.isRunning { process.terminate() }
    }
}
