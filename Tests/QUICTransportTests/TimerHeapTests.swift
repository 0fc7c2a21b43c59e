import Testing
@testable import QUICTransport

@Suite struct TimerHeapTests {
    @Test func popsInDeadlineOrderOnlyWhenDue() {
        var heap = TimerHeap()
        for (deadline, handle) in [(50, 1), (10, 2), (30, 3), (20, 4), (40, 5)] {
            heap.push(deadline: UInt64(deadline), handle: UInt64(handle))
        }
        #expect(heap.popDue(now: 5) == nil)
        var order: [UInt64] = []
        while let entry = heap.popDue(now: 35) { order.append(entry.handle) }
        #expect(order == [2, 4, 3])
        #expect(heap.earliest == 40)
        #expect(heap.count == 2)
    }
}
