import NIOCore
import Yamux

/// `YamuxFrameParser`.
///
/// Input: `limitSelector u8 | chunkSeed u8 | stream`. The selector picks `maximumDataLength`
/// (0, 1, 12, 64 KiB, 256 KiB, UInt32.max). Properties:
/// - chunked parsing yields the same frames and the same ending as whole parsing;
/// - a Data frame's payload is exactly `header.length` bytes and within the limit; other frames
///   have no payload;
/// - every frame re-encodes to exactly the bytes it was parsed from;
/// - `nil` consumes nothing, and an error leaves the bad frame unread.
public enum YamuxFrameFuzzTarget {
    static let limits: [UInt32] = [0, 1, 12, 65_536, 262_144, .max]

    enum Ending: Equatable {
        case needsMoreBytes
        case error(YamuxError.Code)
    }

    struct Outcome {
        var frames: [YamuxFrame] = []
        var spans: [Range<Int>] = []
        var ending: Ending = .needsMoreBytes
    }

    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let limit = limits[Int(input.u8()) % limits.count]
        let chunkSeed = input.u8()
        let stream = input.rest()
        let whole = parse([stream], limit: limit)
        let chunked = parse(FuzzChunks.split(stream, seed: chunkSeed), limit: limit)
        fuzzCheck(chunked.frames == whole.frames, "chunked and whole parsing disagree on frames")
        fuzzCheck(chunked.ending == whole.ending, "chunked and whole parsing end differently")
        for (frame, span) in zip(whole.frames, whole.spans) {
            var encoded = ByteBuffer()
            encoded.writeYamuxFrame(frame)
            let original = stream[(stream.startIndex + span.lowerBound)..<(stream.startIndex + span.upperBound)]
            fuzzCheck(Array(encoded.readableBytesView) == Array(original), "\(frame) re-encodes to different bytes")
        }
    }

    static func parse(_ chunks: [ArraySlice<UInt8>], limit: UInt32) -> Outcome {
        var parser = YamuxFrameParser(maximumDataLength: limit)
        var outcome = Outcome()
        var consumed = 0
        for chunk in chunks {
            parser.append(ByteBuffer(bytes: chunk))
            while true {
                let before = parser.bufferedBytes
                let frame: YamuxFrame?
                do {
                    frame = try parser.nextFrame()
                } catch {
                    fuzzCheck(parser.bufferedBytes == before, "an error consumed bytes")
                    outcome.ending = .error(error.code)
                    return outcome
                }
                guard let frame else {
                    fuzzCheck(parser.bufferedBytes == before, "a nil frame consumed bytes")
                    break
                }
                let length = before - parser.bufferedBytes
                if frame.header.type == .data {
                    fuzzCheck(frame.header.length <= limit, "Data frame over the limit")
                    fuzzCheck(frame.payload.readableBytes == Int(frame.header.length), "payload length differs from header")
                } else {
                    fuzzCheck(frame.payload.readableBytes == 0, "non-Data frame with a payload")
                }
                fuzzCheck(length == YamuxFrameHeader.encodedLength + frame.payload.readableBytes, "frame consumed \(length) bytes")
                outcome.frames.append(frame)
                outcome.spans.append(consumed..<(consumed + length))
                consumed += length
            }
        }
        return outcome
    }

    /// The frames hashicorp/yamux sends (bytes from YamuxHashicorpFixtureTests), alone and as one stream.
    static let hashicorpFrames: [[UInt8]] = [
        [0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],  // OpenStream: SYN stream 1
        [0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],  // AcceptStream: ACK stream 1
        [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x68, 0x65, 0x6C, 0x6C, 0x6F],  // "hello"
        [0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00],  // WindowUpdate +128 KiB
        [0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],  // FIN stream 1
        [0x00, 0x01, 0x00, 0x08, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00],  // RST stream 3
        [0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],  // Ping SYN
        [0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],  // Ping ACK
        [0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],  // GoAway normal
        [0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01],  // GoAway protocol error
        [0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0C, 0x00, 0x00],  // SYN with a 1 MiB window
    ]

    public static func seeds() -> [[UInt8]] {
        var seeds = hashicorpFrames.map { [4, 0] + $0 }
        seeds.append([4, 1] + hashicorpFrames.joined())
        seeds.append([2, 5] + hashicorpFrames.joined())
        seeds.append([0, 0] + hashicorpFrames[2])  // Data over a zero limit
        seeds.append([4, 0] + [0x01] + hashicorpFrames[0].dropFirst())  // bad version
        seeds.append([4, 0] + [0x00, 0x04] + hashicorpFrames[0].dropFirst(2))  // bad type
        return seeds
    }
}
