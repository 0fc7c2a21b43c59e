import Foundation

/// Runs an operator's command (`--discover-cmd`, `--on-exit-cmd`) with `/bin/sh -c`, with a
/// time limit and a bounded capture of its standard output.
public enum ShellCommand {
    /// The most bytes of standard output kept.
    static let maximumOutput = 64 * 1024

    /// What the command did.
    public struct Outcome: Sendable {
        /// The exit status, or `nil` when it was killed for taking too long or did not start.
        public var status: Int32?
        public var output: String
    }

    /// Runs `command`; kills it after `timeout`.
    public static func run(_ command: String, timeout: Duration = .seconds(30)) async -> Outcome {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: runBlocking(command, timeout: timeout))
            }
        }
    }

    static func runBlocking(_ command: String, timeout: Duration) -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return Outcome(status: nil, output: "")
        }
        let deadline = DispatchTime.now() + .milliseconds(Int(timeout.components.seconds * 1000))
        let done = DispatchSemaphore(value: 0)
        let collected = OutputBox()
        DispatchQueue.global().async {
            let handle = pipe.fileHandleForReading
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                collected.append(chunk)
            }
            done.signal()
        }
        var killed = false
        if done.wait(timeout: deadline) == .timedOut {
            process.terminate()
            killed = true
            _ = done.wait(timeout: .now() + .seconds(2))
        }
        process.waitUntilExit()
        return Outcome(status: killed ? nil : process.terminationStatus, output: collected.text)
    }

    /// Output collected by the reader thread.
    final class OutputBox: @unchecked Sendable {
        // @unchecked Sendable: guarded by `lock`.
        private let lock = NSLock()
        private var data = Data()

        func append(_ chunk: Data) {
            lock.lock()
            defer { lock.unlock() }
            let room = ShellCommand.maximumOutput - data.count
            if room > 0 { data.append(chunk.prefix(room)) }
        }

        var text: String {
            lock.lock()
            defer { lock.unlock() }
            return String(decoding: data, as: UTF8.self)
        }
    }
}
