import NIOCore
import Testing

@testable import Yamux

@Suite struct YamuxFrameParserTests {
    static let sampleFrames: [YamuxFrame] = [
        .data(streamID: 1, flags: [.syn], payload: ByteBuffer(string: "hello")),
        .data(streamID: 2, payload: ByteBuffer()),
        .data(streamID: 0xFFFF_FFFE, flags: [.ack, .fin], payload: ByteBuffer(repeating: 0xAB, count: 70_000)),
        .windowUpdate(streamID: 3, flags: [.syn], delta: 0),
        .windowUpdate(streamID: 3, flags: [.ack], delta: 0x0102_0304),
        .windowUpdate(streamID: 7, flags: [.rst]),
        .windowUpdate(streamID: 9, flags: [.fin], delta: UInt32.max),
        .ping(flags: .syn, opaque: 0),
        .ping(flags: .ack, opaque: 0xDEAD_BEEF),
        .goAway(.normal),
        .goAway(.protocolError),
        .goAway(.internalError),
        .goAway(YamuxGoAwayCode(networkCode: 77)),
    ]

    @Test func headerEncodingIsBigEndianTwelveBytes() {
        var buffer = ByteBuffer()
        let written = buffer.writeYamuxHeader(
            YamuxFrameHeader(type: .windowUpdate, flags: [.syn, .fin], streamID: 0x0102_0304, length: 0x0506_0708))
        #expect(written == 12)
        #expect(Array(buffer.readableBytesView) == [0, 1, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test func headerRoundTrip() throws {
        for frame in Self.sampleFrames {
            var buffer = ByteBuffer()
            buffer.writeYamuxHeader(frame.header)
            let decoded = try buffer.readYamuxHeader()
            #expect(decoded == frame.header)
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test func frameRoundTripThroughParser() throws {
        var parser = YamuxFrameParser(maximumDataLength: 256 * 1024)
        parser.append(encode(Self.sampleFrames))
        var decoded: [YamuxFrame] = []
        while let frame = try parser.nextFrame() {
            decoded.append(frame)
        }
        #expect(decoded == Self.sampleFrames)
        #expect(parser.bufferedBytes == 0)
    }

    @Test func byteByByteDeliveryReturnsNilUntilComplete() throws {
        let all = encode(Self.sampleFrames)
        var parser = YamuxFrameParser(maximumDataLength: 256 * 1024)
        var decoded: [YamuxFrame] = []
        for byte in all.readableBytesView {
            parser.append(ByteBuffer(bytes: [byte]))
            while let frame = try parser.nextFrame() {
                decoded.append(frame)
            }
        }
        #expect(decoded == Self.sampleFrames)
    }

    @Test func partialHeaderAndPartialPayloadRewind() throws {
        var parser = YamuxFrameParser(maximumDataLength: 1024)
        var full = ByteBuffer()
        full.writeYamuxFrame(.data(streamID: 5, payload: ByteBuffer(string: "abcdef")))
        let firstPart = full.getSlice(at: 0, length: 7)
        let secondPart = full.getSlice(at: 7, length: 8)
        let rest = full.getSlice(at: 15, length: full.readableBytes - 15)
        parser.append(try #require(firstPart))
        #expect(try parser.nextFrame() == nil)
        #expect(parser.bufferedBytes == 7)
        parser.append(try #require(secondPart))
        #expect(try parser.nextFrame() == nil)
        #expect(parser.bufferedBytes == 15)
        parser.append(try #require(rest))
        let frame = try #require(try parser.nextFrame())
        #expect(frame.payload == ByteBuffer(string: "abcdef"))
        #expect(try parser.nextFrame() == nil)
    }

    @Test func unknownVersionIsRejected() {
        var parser = YamuxFrameParser(maximumDataLength: 1024)
        parser.append(bytes([1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]))
        #expect(throws: YamuxError.self) { try parser.nextFrame() }
        do {
            _ = try parser.nextFrame()
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidVersion)
            #expect(error.isProtocolViolation)
        }
    }

    @Test func unknownTypeIsRejected() {
        for type: UInt8 in [4, 5, 0x80, 0xFF] {
            var parser = YamuxFrameParser(maximumDataLength: 1024)
            parser.append(bytes([0, type, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]))
            do {
                _ = try parser.nextFrame()
                Issue.record("expected an error for type \(type)")
            } catch {
                #expect(error.code == .invalidFrameType)
            }
        }
    }

    @Test func readYamuxHeaderRewindsOnShortInputAndOnError() throws {
        var short = bytes([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
        #expect(try short.readYamuxHeader() == nil)
        #expect(short.readableBytes == 11)

        var bad = bytes([0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
        #expect(throws: YamuxError.self) { try bad.readYamuxHeader() }
        #expect(bad.readableBytes == 12)
    }

    @Test func oversizedDataIsRejectedBeforeItsPayloadArrives() {
        var parser = YamuxFrameParser(maximumDataLength: 256 * 1024)
        // Header only: Data, stream 1, length 256 KiB + 1. No payload follows yet.
        parser.append(bytes([0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 0, 1]))
        do {
            _ = try parser.nextFrame()
            Issue.record("expected frameTooLarge")
        } catch {
            #expect(error.code == .frameTooLarge)
        }
    }

    @Test func maximalLengthsInNonDataFramesAreNotPayload() throws {
        var parser = YamuxFrameParser(maximumDataLength: 16)
        // WindowUpdate and Ping with huge length fields carry no payload.
        parser.append(bytes([0, 1, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]))
        parser.append(bytes([0, 2, 0, 1, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]))
        let update = try #require(try parser.nextFrame())
        #expect(update.header.length == UInt32.max)
        #expect(update.payload.readableBytes == 0)
        let ping = try #require(try parser.nextFrame())
        #expect(ping.header.type == .ping)
        #expect(try parser.nextFrame() == nil)
    }

    @Test func unknownFlagBitsSurvive() throws {
        var parser = YamuxFrameParser(maximumDataLength: 16)
        parser.append(bytes([0, 1, 0xF0, 0x01, 0, 0, 0, 1, 0, 0, 0, 0]))
        let frame = try #require(try parser.nextFrame())
        #expect(frame.header.flags.contains(.syn))
        #expect(frame.header.flags.rawValue == 0xF001)
        #expect(frame.header.flags.description == "SYN|0xf000")
    }

    /// Random input must only produce frames or errors, never a crash.
    @Test func randomInputNeverTraps() {
        var random = TestRandom(seed: 42)
        for round in 0..<2_000 {
            var parser = YamuxFrameParser(maximumDataLength: 1024)
            var input = random.bytes(Int(random.next() % 64))
            // Bias towards valid versions and types so deeper paths run.
            if input.readableBytes >= 2 {
                input.setInteger(UInt8(0), at: input.readerIndex)
                input.setInteger(UInt8(round % 5), at: input.readerIndex + 1)
            }
            parser.append(input)
            while true {
                guard let frame = try? parser.nextFrame() else { break }
                #expect(frame.header.type != .data || frame.payload.readableBytes == Int(frame.header.length))
            }
        }
    }
}
