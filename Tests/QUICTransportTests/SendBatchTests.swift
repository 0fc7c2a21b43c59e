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
        let loopback = TransportAddress(ipAddress: "127.0.0.1", port: 0)!
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

    /// A wildcard-bound socket that names each packet's source (IP_PKTINFO): packets leave from
    /// the address each slot names, and GSO groups never merge packets of two sources.
    @Test(arguments: [false, true])
    func packetsLeaveFromTheSourceEachSlotNames(gso: Bool) throws {
        let sender = try UDPSocket(binding: TransportAddress(ipAddress: "0.0.0.0", port: 0)!, reportDestination: true)
        #expect(sender.reportsDestinationAddress)
        let receiver = try UDPSocket(binding: TransportAddress(ipAddress: "127.0.0.1", port: 0)!)
        let batch = SendBatch(capacity: 16, segmentationOffload: gso && sender.supportsSegmentationOffload, namesSource: true)
        let storage = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 3)
        defer { storage.deallocate() }
        let destinationLength = receiver.localAddress.write(to: storage)
        let sourceLengths = [TransportAddress(ipAddress: "127.0.0.2", port: 0)!.write(to: storage + 1),
                             TransportAddress(ipAddress: "127.0.0.3", port: 0)!.write(to: storage + 2)]
        let plan = [1, 1, 1, 2, 2, 1]  // which source each packet names
        for (index, source) in plan.enumerated() {
            memset(batch.nextBuffer, Int32(index), 1000)
            UnsafeRawPointer(storage).withMemoryRebound(to: sockaddr.self, capacity: 1) { destination in
                UnsafeRawPointer(storage + source).withMemoryRebound(to: sockaddr.self, capacity: 1) { from in
                    batch.commit(length: 1000, destination: destination, destinationLength: destinationLength,
                                 source: from, sourceLength: sourceLengths[source - 1])
                }
            }
        }
        batch.flush(to: sender.fd)
        #expect(batch.sendFailures == 0)
        var sources: [String] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        let from = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
        defer { from.deallocate() }
        for _ in 0..<500 where sources.count < plan.count {
            var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = buffer.withUnsafeMutableBytes { raw in
                UnsafeMutableRawPointer(from).withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(receiver.fd, raw.baseAddress, 2048, Int32(MSG_DONTWAIT), $0, &fromLength)
                }
            }
            if n > 0 {
                let address = UnsafeRawPointer(from).withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    TransportAddress(sockaddr: $0, length: fromLength)
                }
                sources.append(address?.hostString ?? "?")
                #expect(n == 1000 && buffer[0] == UInt8(sources.count - 1))
            } else {
                usleep(1000)
            }
        }
        #expect(sources == plan.map { $0 == 1 ? "127.0.0.2" : "127.0.0.3" })
    }

    /// A bound UDP port is the relay's alone: a second socket cannot bind it (no SO_REUSEADDR,
    /// which on Linux would let another process share the port and take part of its traffic).
    @Test func aBoundPortCannotBeBoundTwice() throws {
        let first = try UDPSocket(binding: TransportAddress(ipAddress: "127.0.0.1", port: 0)!)
        #expect(throws: QUICTransportError.self) { _ = try UDPSocket(binding: first.localAddress) }
    }
}
