/// Collects the bytes of one `\n`-terminated line from a stream, never more than `limit`
/// bytes (newline included); bytes after the newline are kept as the leftover.
public struct ProxyLineBuffer: Sendable {
    /// What a call to ``append(_:)`` decided.
    public enum Result: Equatable, Sendable {
        /// No newline yet, within the limit.
        case needMore
        /// The line without its `\n`, and the bytes that came after it in the same input.
        case line([UInt8], leftover: [UInt8])
        /// The limit was reached without a newline.
        case tooLong
        /// A line or a refusal was already reported.
        case finished
    }

    private let limit: Int
    private var bytes: [UInt8] = []
    private var done = false

    /// - Parameter limit: The most bytes a line may take, its newline included.
    public init(limit: Int = ProxyDefaults.maximumLineLength) {
        self.limit = max(1, limit)
    }

    /// Adds bytes and says whether the line is complete.
    public mutating func append(_ more: some Collection<UInt8>) -> Result {
        guard !done else { return .finished }
        if let newline = more.firstIndex(of: UInt8(ascii: "\n")) {
            let head = more[more.startIndex..<newline]
            guard bytes.count + head.count + 1 <= limit else {
                done = true
                return .tooLong
            }
            bytes.append(contentsOf: head)
            done = true
            return .line(bytes, leftover: Array(more[more.index(after: newline)...]))
        }
        guard bytes.count + more.count < limit else {
            done = true
            return .tooLong
        }
        bytes.append(contentsOf: more)
        return .needMore
    }
}
