/// Reads a fuzz input front to back. Reads past the end return zeros or fewer bytes, so a
/// target never has to check lengths: every input, even an empty one, is a valid program.
public struct FuzzInput: Sendable {
    public let bytes: [UInt8]
    public private(set) var index = 0

    public init(_ data: UnsafeRawBufferPointer) {
        self.bytes = Array(data)
    }

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public var remaining: Int { bytes.count - index }
    public var isAtEnd: Bool { index >= bytes.count }

    /// Up to `count` bytes (fewer at the end).
    public mutating func take(_ count: Int) -> ArraySlice<UInt8> {
        let n = min(max(count, 0), remaining)
        defer { index += n }
        return bytes[index..<(index + n)]
    }

    /// Everything not read yet.
    public mutating func rest() -> ArraySlice<UInt8> { take(remaining) }

    public mutating func u8() -> UInt8 { take(1).first ?? 0 }
    public mutating func u16() -> UInt16 { take(2).reduce(0) { $0 << 8 | UInt16($1) } }
    public mutating func u32() -> UInt32 { take(4).reduce(0) { $0 << 8 | UInt32($1) } }
    public mutating func u64() -> UInt64 { take(8).reduce(0) { $0 << 8 | UInt64($1) } }
}

/// splitmix64: a tiny seeded generator, for chunk sizes here and for the replay tool's mutator.
public struct FuzzRandom: Sendable {
    private var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<bound` (`bound` > 0).
    public mutating func below(_ bound: Int) -> Int {
        Int(truncatingIfNeeded: next() % UInt64(max(bound, 1)))
    }
}

/// Splits a byte stream the way a socket might deliver it, so incremental parsers see every
/// boundary. The sizes come from `seed`, a byte of the input: seed 0 delivers the stream whole,
/// and the low bits pick the largest chunk (1 byte up to 70 000 bytes).
public enum FuzzChunks {
    public static func split(_ stream: ArraySlice<UInt8>, seed: UInt8) -> [ArraySlice<UInt8>] {
        guard seed != 0 else { return [stream] }
        let largest = [1, 2, 3, 7, 12, 16, 64, 255, 4099, 70_000][Int(seed % 10)]
        var random = FuzzRandom(seed: UInt64(seed) &* 0x1000_0001 &+ UInt64(stream.count))
        var chunks: [ArraySlice<UInt8>] = []
        var start = stream.startIndex
        while start < stream.endIndex {
            let end = min(stream.endIndex, start + 1 + random.below(largest))
            chunks.append(stream[start..<end])
            start = end
        }
        return chunks
    }
}

/// Fails loudly when a fuzz oracle does not hold. A trap is what libFuzzer and the replay
/// tool report as a crash; the message says which property broke.
@inline(never)
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        fatalError("fuzz property violated: \(message())", file: file, line: line)
    }
}
