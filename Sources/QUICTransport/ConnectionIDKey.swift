/// A QUIC connection ID (0–20 bytes) as a dictionary key, stored inline without heap allocation.
struct ConnectionIDKey: Hashable {
    private var a: UInt64 = 0
    private var b: UInt64 = 0
    private var c: UInt32 = 0
    private var length: UInt8 = 0

    /// Creates a key from `count` bytes at `bytes`; `nil` when longer than 20 bytes.
    @inline(__always)
    init?(_ bytes: UnsafePointer<UInt8>, count: Int) {
        guard count >= 0, count <= 20 else { return nil }
        length = UInt8(count)
        withUnsafeMutableBytes(of: &self) { raw in
            // Layout: a(8) b(8) c(4) — copy into the first 20 bytes.
            raw.baseAddress?.copyMemory(from: bytes, byteCount: count)
        }
    }

    init?(_ bytes: [UInt8]) {
        guard let key = bytes.withUnsafeBufferPointer({ buffer -> ConnectionIDKey? in
            guard let base = buffer.baseAddress else { return ConnectionIDKey.empty }
            return ConnectionIDKey(base, count: buffer.count)
        }) else { return nil }
        self = key
    }

    private init() {}
    static let empty = ConnectionIDKey()
}
