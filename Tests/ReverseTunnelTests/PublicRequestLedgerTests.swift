@testable import ReverseTunnel
import Testing

@Suite struct PublicRequestLedgerTests {
    let t0 = ContinuousClock.now

    @Test func pipelinedRequestsGetTheirBytesAndStatusesInOrder() {
        var ledger = PublicRequestLedger()
        #expect(ledger.newestIsAnswered && !ledger.awaitsResponseHead)
        ledger.addRequestBytes(5)  // nothing to count it for: ignored
        ledger.begin(method: "POST", path: "/1", at: t0, headBytes: 100)
        ledger.addRequestBytes(10)
        ledger.begin(method: "GET", path: "/2", at: t0, headBytes: 50)
        ledger.addRequestBytes(1)
        #expect(ledger.count == 2 && ledger.awaitsResponseHead && !ledger.newestIsAnswered)
        ledger.receivedStatus(200)
        ledger.addResponseBytes(30)
        #expect(ledger.awaitsResponseHead)
        let first = ledger.finishOldest()
        #expect(first == .init(method: "POST", path: "/1", started: t0, bytesIn: 110, bytesOut: 30, status: 200))
        ledger.receivedStatus(404)
        ledger.addResponseBytes(7)
        #expect(!ledger.awaitsResponseHead && ledger.newestIsAnswered)
        #expect(ledger.finishOldest() == .init(method: "GET", path: "/2", started: t0, bytesIn: 51, bytesOut: 7, status: 404))
        #expect(ledger.finishOldest() == nil && ledger.isEmpty)
    }

    @Test func theServersOwnAnswerGoesToTheNewestRequestOrToAPlaceholder() {
        var ledger = PublicRequestLedger()
        ledger.answerNewest(status: 431, responseBytes: 120, at: t0)
        #expect(ledger.drain() == [.init(method: "-", path: "-", started: t0, bytesOut: 120, status: 431)])
        ledger.begin(method: "GET", path: "/a", at: t0)
        ledger.begin(method: "GET", path: "/b", at: t0)
        ledger.answerNewest(status: 421, responseBytes: 9, at: t0)
        let left = ledger.drain()
        #expect(left.map(\.status) == [nil, 421])
        #expect(ledger.isEmpty)
    }
}
