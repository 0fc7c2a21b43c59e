import NIOCore
import Testing
@testable import RelayCore

@Suite struct ControlFrameTests {
    static let clientFrames: [ControlFrame] = [
        .allocate(peerID: Fixture.peerA, token: Fixture.token().bytes),
        .refresh(token: Fixture.token().bytes),
        .release,
    ]
    static let relayFrames: [ControlFrame] = [
        .allocated(.init(allocationID: Fixture.allocation, expiresAt: 99, bandwidthBitsPerSecond: 10_000_000, quotaBytes: 0,
                         relayPort: 4433, relayAddress: "relay.example", observedAddress: "[2001:db8::1]:5000")),
        .peer(.waiting), .peer(.paired), .peer(.peerGone),
        .quota(used: 900, quota: 1000),
        .refreshed(expiresAt: 1234),
        .goAway(.init(reason: .redirect, reconnectInMilliseconds: 1500, tryForMilliseconds: 30_000, alternate: "10.0.0.2:4433")),
        .goAway(.init(reason: .replaced)),
        .status(kind: .throttled, dropped: 42),
        .error(code: .quotaExceeded, reason: "quota exceeded — ünïcode"),
    ]

    func parse(_ bytes: [UInt8], _ direction: ControlFrameParser.Direction) throws -> [ControlFrame] {
        var p = ControlFrameParser(direction: direction)
        try p.append(bytes)
        var out: [ControlFrame] = []
        while let f = try p.nextFrame() { out.append(f) }
        return out
    }

    @Test func everyFrameRoundTrips() throws {
        for f in Self.clientFrames { #expect(try parse(ControlFrameSerializer.encode(f), .fromClient) == [f]) }
        for f in Self.relayFrames { #expect(try parse(ControlFrameSerializer.encode(f), .fromRelay) == [f]) }
    }

    @Test func byteExactFixtures() {
        // ALLOCATE: 01 | len 00 d4 (16 + 2 + 194 = 212) | peer id | 00 c2 | token
        let allocate = ControlFrameSerializer.encode(.allocate(peerID: Fixture.peerA, token: Fixture.token().bytes))
        #expect(Array(allocate[0..<3]) == [0x01, 0x00, 0xD4])
        #expect(Array(allocate[3..<19]) == Fixture.peerA.bytes)
        #expect(Array(allocate[19..<21]) == [0x00, 0xC2])
        #expect(allocate.count == 3 + 212)
        // ALLOCATED with relay "r" and observed "1.2.3.4:5"
        let allocated = ControlFrameSerializer.encode(.allocated(.init(
            allocationID: ID16(high: 0x0102030405060708, low: 0x090A0B0C0D0E0F10), expiresAt: 0x11, bandwidthBitsPerSecond: 0x22,
            quotaBytes: 0x33, relayPort: 0x1151, relayAddress: "r", observedAddress: "1.2.3.4:5")))
        let expected: [UInt8] = [0x81, 0x00, 0x36]
            + [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
            + [0, 0, 0, 0, 0, 0, 0, 0x11] + [0, 0, 0, 0, 0, 0, 0, 0x22] + [0, 0, 0, 0, 0, 0, 0, 0x33]
            + [0x11, 0x51] + [1, UInt8(ascii: "r")] + [9] + Array("1.2.3.4:5".utf8)
        #expect(allocated == expected)
        // GOAWAY shutdown, reconnect 1000 ms, try 5000 ms, alt "a:1"
        #expect(ControlFrameSerializer.encode(.goAway(.init(reason: .shutdown, reconnectInMilliseconds: 1000, tryForMilliseconds: 5000, alternate: "a:1")))
                == [0x85, 0x00, 0x0D, 0x00, 0x00, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x13, 0x88, 0x03, 0x61, 0x3A, 0x31])
        // ERROR capacity "full"
        #expect(ControlFrameSerializer.encode(.error(code: .capacity, reason: "full"))
                == [0xFF, 0x00, 0x08, 0x00, 0x07, 0x00, 0x04, 0x66, 0x75, 0x6C, 0x6C])
        #expect(ControlFrameSerializer.encode(.release) == [0x03, 0x00, 0x00])
        #expect(ControlFrameSerializer.encode(.peer(.paired)) == [0x82, 0x00, 0x01, 0x01])
        #expect(ControlFrameSerializer.encode(.status(kind: .throttled, dropped: 5)) == [0x86, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 5])
    }

    @Test func incrementalParsingReturnsNilUntilComplete() throws {
        let bytes = Self.clientFrames.flatMap(ControlFrameSerializer.encode)
        var p = ControlFrameParser(direction: .fromClient)
        var out: [ControlFrame] = []
        for b in bytes {
            try p.append([b])
            while let f = try p.nextFrame() { out.append(f) }
        }
        #expect(out == Self.clientFrames)
        #expect(p.bufferedCount == 0)
    }

    @Test func malformedFramesAreBadMessage() {
        let bad: [([UInt8], ControlFrameParser.Direction)] = [
            ([0x04, 0, 0], .fromClient),  // unknown type
            ([0x81, 0, 0], .fromClient),  // relay frame from a client
            ([0x01, 0, 0], .fromRelay),  // client frame from the relay
            ([0x01, 0x10, 0x01], .fromClient),  // length 4097
            ([0x03, 0, 1, 0], .fromClient),  // RELEASE with a body
            ([0x01, 0, 18] + [UInt8](repeating: 0, count: 16) + [0, 5], .fromClient),  // token_len past the end
            ([0x02, 0, 4, 0, 1, 9, 9], .fromClient),  // trailing byte after the token
            ([0x82, 0, 1, 3], .fromRelay),  // unknown PEER state
            ([0x85, 0, 10, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0], .fromRelay),  // unknown GOAWAY reason
            ([0xFF, 0, 5, 0, 1, 0, 1, 0xC3], .fromRelay),  // invalid UTF-8
            ([0x86, 0, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0], .fromRelay),  // unknown STATUS kind
        ]
        for (bytes, direction) in bad {
            #expect(throws: RelayError.badMessage("")) { try parse(bytes, direction) }
        }
    }

    @Test func lengthIsCheckedBeforeTheBodyArrives() throws {
        var p = ControlFrameParser(direction: .fromClient)
        try p.append([0x01, 0xFF, 0xFF])
        #expect(throws: RelayError.badMessage("")) { try p.nextFrame() }
    }

    @Test func bufferedBytesAreBounded() throws {
        var p = ControlFrameParser(direction: .fromClient, maximumBufferedBytes: 5000)
        try p.append([UInt8](repeating: 0x03, count: 3000))
        #expect(throws: RelayError.badMessage("")) { try p.append([UInt8](repeating: 0, count: 3000)) }
    }

    @Test func pinnedFuzzInputsDoNotCrash() {
        // Any input either parses, asks for more, or throws bad_message: never traps.
        var seed: UInt64 = 0x5EED
        for _ in 0..<2000 {
            var p = ControlFrameParser(direction: .fromClient)
            var bytes: [UInt8] = []
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let n = Int(seed >> 56)
            for _ in 0..<n {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                bytes.append(UInt8(truncatingIfNeeded: seed >> 33))
            }
            if !bytes.isEmpty { bytes[0] = [0x01, 0x02, 0x03][Int(bytes[0]) % 3] }
            try? p.append(bytes)
            while let _ = try? p.nextFrame() {}
        }
    }
}

@Suite struct FallbackWireTests {
    @Test func datagramsAreFramedAsLengthAndPayload() {
        var buffer = ByteBuffer()
        [UInt8]([7, 8, 9]).withUnsafeBytes { #expect(FallbackWire.writeDatagram($0, into: &buffer)) }
        [UInt8]().withUnsafeBytes { #expect(FallbackWire.writeDatagram($0, into: &buffer)) }
        #expect(Array(buffer.readableBytesView) == [0, 3, 7, 8, 9, 0, 0])
        #expect(FallbackWire.framedSize(in: buffer, at: 0) == 5)
        #expect(FallbackWire.framedSize(in: buffer, at: 5) == 2)
        #expect(FallbackWire.framedSize(in: buffer, at: 7) == nil)
        var partial = ByteBuffer(bytes: [0, 4, 1, 2, 3])
        #expect(FallbackWire.framedSize(in: partial, at: 0) == nil)
        partial.writeInteger(UInt8(4))
        #expect(FallbackWire.framedSize(in: partial, at: 0) == 6)
        let tooLong = [UInt8](repeating: 0, count: 65_536)
        #expect(tooLong.withUnsafeBytes { FallbackWire.framedDatagram($0) } == nil)
    }
}
