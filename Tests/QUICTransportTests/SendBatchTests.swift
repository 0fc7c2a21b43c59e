#if canImport(Glibc)
import Glibc
#endif
@testable import QUICTransport
import Testing

/// `SendBatch` with and without UDP GSO over real loopback sockets: every packet arrives as
/// its own datagram, with its own bytes, in order.
@Suite struct SendBatchTests {
    /// Commits `sizes.count` packets (byte `i` everywhere in packet `i`) to `receiver`, flushes,
    /// and returns what the receiver got.
    static func roundTrip(sizes: [Int], gso: Bool, extraDestinationAt: Int? = nil) throws -> (received: [[UInt8]], batch: SendBatch) {
        let loopback = SocketAddress(ipAddress: "127.0.0.1", port: 0)!
        let sender = try UDPSocket(binding: loopback)
        let receiver = try UDPSocket(binding: loopback)
        let other = try UDPSocket(binding: loopback)
        let batch = SendBatch(capacity: 128, segmentationOffload: gso && sender.supportsSegmentationOffload)
        let storage = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 2)
        defer { storage.deallocate() }
        let length = receiver.localAddress.write(to: storage)
        let otherLength = other.localAddress.write(to: storage + 1)
        for (index, size) in sizes.enumerated() {
            memset(batch.nextBuffer, Int32(index & 0xFF), size)
            let target = index == extraDestinationAt ? storage + 1 : storage
            UnsafeRawPointer(target).withMemoryRebound(to: sockaddr.self, capacity: 1) {
                batch.commit(length: size, destination: $0, destinationLength: index == extraDestinationAt ? otherLength : length)
            }
        }
        batch.flush(to: sender.fd)
        var received: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        for _ in 0..<200 {
            let n = buffer.withUnsafeMutableBytes { recv(receiver.fd, $0.baseAddress, 2048, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                received.append(Array(buffer[0..<n]))
            } else if received.count >= sizes.count - (extraDestinationAt == nil ? 0 : 1) {
                break
            } else {
                usleep(1000)
            }
        }
        return (received, batch)
    }

    static func expected(_ sizes: [Int], skipping skipped: Int? = nil) -> [[UInt8]] {
        sizes.enumerated().filter { $0.offset != skipped }.map { [UInt8](repeating: UInt8($0.offset & 0xFF), count: $0.element) }
    }

    @Test(arguments: [false, true])
    func equalPacketsArriveOneByOne(gso: Bool) throws {
        let sizes = [Int](repeating: 1200, count: 40) + [700]
        let (received, batch) = try Self.roundTrip(sizes: sizes, gso: gso)
        #expect(received == Self.expected(sizes))
        #expect(batch.packetsSent == UInt64(sizes.count))
        #expect(batch.sendFailures == 0)
    }

    @Test(arguments: [false, true])
    func mixedSizesAndDestinationsSplitGroups(gso: Bool) throws {
        // Larger after smaller, a smaller one in the middle, another destination in between,
        // and more than 64 equal packets in a row.
        let sizes = [100, 1200, 1200, 1300, 1300, 50, 1300] + [Int](repeating: 900, count: 70) + [1452]
        let (received, batch) = try Self.roundTrip(sizes: sizes, gso: gso, extraDestinationAt: 3)
        #expect(received == Self.expected(sizes, skipping: 3))
        #expect(batch.packetsSent == UInt64(sizes.count))
    }
}
