/// The requests of one public connection that await their responses, oldest first, with what
/// the access log needs (DESIGN §11). Pure: the handler feeds it what the scanner and the
/// response observer saw, with the time passed in.
///
/// Request bytes count toward the newest request (the one being sent); response bytes toward
/// the oldest (the one being answered); a status goes to the oldest request without one.
struct PublicRequestLedger {
    /// One request, as logged.
    struct Record: Equatable {
        var method: String
        var path: String
        var started: ContinuousClock.Instant
        var bytesIn = 0
        var bytesOut = 0
        var status: Int?
    }

    private(set) var records: [Record] = []

    var isEmpty: Bool { records.isEmpty }
    var count: Int { records.count }
    /// Whether some request still waits for its response head (the 504 timer runs).
    var awaitsResponseHead: Bool { records.contains { $0.status == nil } }
    /// Whether the newest request has its response head (after an upgrade: the bridge is on).
    var newestIsAnswered: Bool { records.last.map { $0.status != nil } ?? true }

    /// A request head was forwarded (`headBytes` as rewritten).
    mutating func begin(method: String, path: String, at now: ContinuousClock.Instant, headBytes: Int = 0) {
        records.append(Record(method: method, path: path, started: now, bytesIn: headBytes))
    }

    mutating func addRequestBytes(_ count: Int) {
        guard !records.isEmpty else { return }
        records[records.count - 1].bytesIn += count
    }

    mutating func addResponseBytes(_ count: Int) {
        guard !records.isEmpty else { return }
        records[0].bytesOut += count
    }

    /// A response head arrived.
    mutating func receivedStatus(_ status: Int) {
        if let index = records.firstIndex(where: { $0.status == nil }) { records[index].status = status }
    }

    /// The oldest response ended; returns its record for the log.
    mutating func finishOldest() -> Record? {
        records.isEmpty ? nil : records.removeFirst()
    }

    /// The server answers itself (`status`, `responseBytes`): the answer belongs to the newest
    /// request, or to a request that had no parsed head (`-`).
    mutating func answerNewest(status: Int, responseBytes: Int, at now: ContinuousClock.Instant) {
        if records.isEmpty { records.append(Record(method: "-", path: "-", started: now)) }
        records[records.count - 1].status = status
        records[records.count - 1].bytesOut += responseBytes
    }

    /// Everything left, for the log when the connection ends.
    mutating func drain() -> [Record] {
        defer { records.removeAll() }
        return records
    }
}
