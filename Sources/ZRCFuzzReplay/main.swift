// zrc-fuzz-replay: runs the fuzz targets of FuzzTargets without libFuzzer, in an ordinary build.
//
// For each target it runs the built-in seeds, every file of tools/fuzz/corpus/<target>/ and
// tools/fuzz/fixtures/<target>/, then mutated inputs (a seeded simple mutator) for a few
// seconds. A crash is a trap, so the process dies with a signal; before that the input is
// written to a file and its origin printed. `make test` runs it; see tools/fuzz/README.md.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import FuzzTargets

struct Options {
    var root = "tools/fuzz"
    var seconds = 3.0
    var seed: UInt64 = 1
    var includeCrashes = false
    var writeSeeds = false
    var targets: [String] = []
    var inputs: [String] = []
}

func usage() -> Never {
    print("""
        usage: zrc-fuzz-replay [--root DIR] [--seconds S] [--seed N] [--include-crashes] [--write-seeds] [TARGET...]
          --root DIR          folder holding corpus/, fixtures/ and crashes/ (default tools/fuzz)
          --seconds S         seconds of mutated inputs per target (default 3; 0 = replay only)
          --seed N            mutator seed (default 1)
          --include-crashes   also replay crashes/<target>/ (known, unfixed crash inputs)
          --write-seeds       write the built-in seeds to corpus/<target>/ and exit
          --input FILE        run only this file (repeatable) through the one TARGET given, and exit
        targets: \(FuzzTargetRegistry.all.map(\.name).joined(separator: ", ")) (default: all)
        """)
    exit(2)
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    func value() -> String {
        guard let value = arguments.popFirst() else { usage() }
        return value
    }
    while let argument = arguments.popFirst() {
        switch argument {
        case "--root": options.root = value()
        case "--seconds":
            guard let seconds = Double(value()), seconds >= 0 else { usage() }
            options.seconds = seconds
        case "--seed":
            guard let seed = UInt64(value()) else { usage() }
            options.seed = seed
        case "--include-crashes": options.includeCrashes = true
        case "--input": options.inputs.append(value())
        case "--write-seeds": options.writeSeeds = true
        case "-h", "--help": usage()
        default:
            guard FuzzTargetRegistry.named(argument) != nil else { usage() }
            options.targets.append(argument)
        }
    }
    return options
}

// MARK: Crash reporting

/// What is running now, for the signal handler (plain C memory: nothing Swift runs in it).
nonisolated(unsafe) var currentInput: UnsafeRawBufferPointer?
nonisolated(unsafe) var currentLabel: UnsafeMutablePointer<CChar>?
nonisolated(unsafe) var crashPath: UnsafeMutablePointer<CChar>?

func writeStderr(_ pointer: UnsafePointer<CChar>?) {
    guard let pointer else { return }
    _ = write(2, pointer, strlen(pointer))
}

func installCrashHandler() {
    let directory = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    crashPath = strdup("\(directory)/zrc-fuzz-smoke-crash.bin")
    for sig in [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGABRT, SIGFPE] {
        signal(sig) { sig in
            writeStderr("\nfuzz-smoke: CRASH while running ")
            writeStderr(currentLabel)
            if let input = currentInput, let path = crashPath {
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                if fd >= 0 {
                    if let base = input.baseAddress { _ = write(fd, base, input.count) }
                    close(fd)
                    writeStderr("; input written to ")
                    writeStderr(path)
                }
            }
            writeStderr("\n")
            signal(sig, SIG_DFL)
            raise(sig)
        }
    }
}

func run(_ target: FuzzTarget, _ bytes: [UInt8], label: @autoclosure () -> String) {
    free(currentLabel)
    currentLabel = strdup(label())
    bytes.withUnsafeBytes { buffer in
        currentInput = buffer
        target.run(buffer)
        currentInput = nil
    }
}

/// Unbuffered, so progress lines are not lost when a crash kills the process.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

// MARK: Inputs

func files(in directory: String) -> [String] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
    return names.filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted().map { "\(directory)/\($0)" }
}

func readFile(_ path: String) -> [UInt8]? {
    FileManager.default.contents(atPath: path).map { [UInt8]($0) }
}

/// FNV-1a, for seed file names.
func fingerprint(_ bytes: [UInt8]) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}

// MARK: Mutator

/// A few byte-level mutations in the spirit of libFuzzer's, enough for a cheap smoke.
struct Mutator {
    var random: FuzzRandom
    static let interestingBytes: [UInt8] = [0, 1, 0x0A, 0x0D, 0x20, 0x3D, 0x5B, 0x7F, 0x80, 0xFE, 0xFF]
    static let interestingWords: [UInt32] = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x1000, 0x7FFF, 0x8000, 0xFFFF, 0x4_0000, 0x7FFF_FFFF, 0xFFFF_FFFF]

    mutating func mutate(_ input: [UInt8], pool: [[UInt8]]) -> [UInt8] {
        var bytes = input
        let limit = max(8192, input.count)
        for _ in 0...random.below(4) {
            switch random.below(9) {
            case 0 where !bytes.isEmpty:
                bytes[random.below(bytes.count)] ^= UInt8(1) << UInt8(random.below(8))
            case 1 where !bytes.isEmpty:
                bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next())
            case 2 where !bytes.isEmpty:
                bytes[random.below(bytes.count)] = Self.interestingBytes[random.below(Self.interestingBytes.count)]
            case 3:
                let count = 1 + random.below(8)
                let insert = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                bytes.insert(contentsOf: insert, at: random.below(bytes.count + 1))
            case 4 where !bytes.isEmpty:
                let start = random.below(bytes.count)
                bytes.removeSubrange(start..<min(bytes.count, start + 1 + random.below(16)))
            case 5 where !bytes.isEmpty:
                let start = random.below(bytes.count)
                let piece = bytes[start..<min(bytes.count, start + 1 + random.below(64))]
                bytes.insert(contentsOf: piece, at: random.below(bytes.count + 1))
            case 6 where !pool.isEmpty:
                let other = pool[random.below(pool.count)]
                let cut = random.below(bytes.count + 1)
                let from = random.below(other.count + 1)
                bytes = Array(bytes[..<cut]) + other[from...]
            case 7 where bytes.count >= 4:
                let at = random.below(bytes.count - 3)
                let word = Self.interestingWords[random.below(Self.interestingWords.count)]
                let bigEndian = random.below(2) == 0
                for i in 0..<4 {
                    let shift = bigEndian ? 24 - 8 * i : 8 * i
                    bytes[at + i] = UInt8(truncatingIfNeeded: word >> UInt32(shift))
                }
            case 8 where !bytes.isEmpty:
                bytes.removeLast(random.below(bytes.count) + 1)
            default:
                bytes.append(UInt8(truncatingIfNeeded: random.next()))
            }
        }
        if bytes.count > limit { bytes.removeLast(bytes.count - limit) }
        return bytes
    }
}

// MARK: Main

let options = parseOptions()
let targets = options.targets.isEmpty ? FuzzTargetRegistry.all : options.targets.compactMap(FuzzTargetRegistry.named)

if options.writeSeeds {
    for target in targets {
        let directory = "\(options.root)/corpus/\(target.name)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var seeds = target.seeds()
        if target.name == "config", let example = readFile("config/zrc-relay.toml") {
            seeds.append([0] + example)
        }
        for seed in seeds {
            let path = "\(directory)/seed-\(fingerprint(seed))"
            guard FileManager.default.createFile(atPath: path, contents: Data(seed)) else {
                say("fuzz-smoke: cannot write \(path)")
                exit(1)
            }
        }
        say("fuzz-smoke: wrote \(seeds.count) seeds to \(directory)")
    }
    exit(0)
}

installCrashHandler()
if !options.inputs.isEmpty {
    guard targets.count == 1 else { usage() }
    for path in options.inputs {
        guard let bytes = readFile(path) else {
            say("fuzz-smoke: cannot read \(path)")
            exit(1)
        }
        run(targets[0], bytes, label: path)
    }
    say("fuzz-smoke: \(targets[0].name): \(options.inputs.count) inputs")
    exit(0)
}
var total = 0
for (index, target) in targets.enumerated() {
    var pool = target.seeds()
    var replayed = 0
    for (number, seed) in pool.enumerated() {
        run(target, seed, label: "\(target.name) built-in seed \(number)")
        replayed += 1
    }
    var folders = ["\(options.root)/corpus/\(target.name)", "\(options.root)/fixtures/\(target.name)"]
    if options.includeCrashes { folders.append("\(options.root)/crashes/\(target.name)") }
    for path in folders.flatMap(files(in:)) {
        guard let bytes = readFile(path) else { continue }
        run(target, bytes, label: path)
        pool.append(bytes)
        replayed += 1
    }

    var mutator = Mutator(random: FuzzRandom(seed: options.seed &* 1_000_003 &+ UInt64(index)))
    var mutated = 0
    let clock = ContinuousClock()
    let deadline = clock.now + .milliseconds(Int64(options.seconds * 1000))
    while clock.now < deadline {
        let base = pool.isEmpty ? [] : pool[mutator.random.below(pool.count)]
        // Every target mutates its whole input: the TOML text of config inputs too, now that
        // TOMLGate keeps toml++ away from the input that tripped its assertions.
        let input = mutator.mutate(base, pool: pool)
        run(target, input, label: "\(target.name) mutated input \(mutated) (seed \(options.seed))")
        mutated += 1
        if mutated % 64 == 0, pool.count < 4096, input.count < 4096 { pool.append(input) }
    }
    say("fuzz-smoke: \(target.name): \(replayed) corpus and seed inputs, \(mutated) mutated in \(options.seconds) s")
    total += replayed + mutated
}
say("fuzz-smoke: \(targets.count) targets, \(total) inputs")
