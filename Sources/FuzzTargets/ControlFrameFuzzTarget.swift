import RelayCore

/// `ControlFrameParser`, both directions.
///
/// Input: `limit u8 | chunkSeed u8 | stream`. The stream goes to a parser of each direction
/// twice: whole, and in chunks cut by `chunkSeed` (`FuzzChunks`). Properties:
/// - chunked parsing yields the same frames and the same ending as whole parsing (unless the
///   chunked parser refused a chunk over its buffer limit; then its frames are a prefix);
/// - the buffer never holds more than `maximumBufferedBytes`;
/// - every parsed frame re-serialises to exactly the bytes it was parsed from (a parsed frame
///   is always within the serializer's limits, so it truncates nothing), and those bytes parse
///   back to an equal frame.
public enum ControlFrameFuzzTarget {
    enum Ending: Equatable {
        case needsMoreBytes
        case malformed
        case overLimit
    }

    struct Outcome {
        var frames: [ControlFrame] = []
        /// Byte ranges of `frames` in the stream (whole parsing only).
        var spans: [Range<Int>] = []
        var ending: Ending = .needsMoreBytes
    }

    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let limit = Int(input.u8()) * 512
        let chunkSeed = input.u8()
        let stream = input.rest()
        for direction in [ControlFrameParser.Direction.fromClient, .fromRelay] {
            let whole = parse([stream], direction: direction, maximumBufferedBytes: stream.count + 8192)
            let chunked = parse(FuzzChunks.split(stream, seed: chunkSeed), direction: direction, maximumBufferedBytes: limit)
            if chunked.ending == .overLimit {
                fuzzCheck(chunked.frames.count <= whole.frames.count
                          && Array(whole.frames.prefix(chunked.frames.count)) == chunked.frames,
                          "chunked frames are not a prefix of whole frames")
            } else {
                fuzzCheck(chunked.frames == whole.frames, "chunked and whole parsing disagree on frames")
                fuzzCheck(chunked.ending == whole.ending, "chunked and whole parsing end differently")
            }
            fuzzCheck(whole.ending != .overLimit, "whole parsing hit a limit it was not given")
            for (frame, span) in zip(whole.frames, whole.spans) {
                checkRoundTrip(frame, original: stream[(stream.startIndex + span.lowerBound)..<(stream.startIndex + span.upperBound)],
                               direction: direction)
            }
        }
    }

    static func parse(_ chunks: [ArraySlice<UInt8>], direction: ControlFrameParser.Direction,
                      maximumBufferedBytes: Int) -> Outcome {
        var parser = ControlFrameParser(direction: direction, maximumBufferedBytes: maximumBufferedBytes)
        var outcome = Outcome()
        var consumed = 0
        for chunk in chunks {
            do {
                try parser.append(chunk)
            } catch {
                fuzzCheck(error.code == .badMessage, "append threw \(error.code)")
                outcome.ending = .overLimit
                return outcome
            }
            fuzzCheck(parser.bufferedCount <= parser.maximumBufferedBytes, "parser holds more than its limit")
            while true {
                let before = parser.bufferedCount
                let frame: ControlFrame?
                do {
                    frame = try parser.nextFrame()
                } catch {
                    fuzzCheck(error.code == .badMessage, "nextFrame threw \(error.code)")
                    outcome.ending = .malformed
                    return outcome
                }
                guard let frame else {
                    fuzzCheck(parser.bufferedCount == before, "a nil frame consumed bytes")
                    break
                }
                let length = before - parser.bufferedCount
                fuzzCheck(length >= 3 && length <= 3 + ControlFrameParser.maximumBodyLength, "frame of \(length) bytes")
                outcome.frames.append(frame)
                outcome.spans.append(consumed..<(consumed + length))
                consumed += length
            }
        }
        return outcome
    }

    static func checkRoundTrip(_ frame: ControlFrame, original: ArraySlice<UInt8>, direction: ControlFrameParser.Direction) {
        let encoded = ControlFrameSerializer.encode(frame)
        fuzzCheck(encoded == Array(original), "\(frame) re-serialises to different bytes")
        fuzzCheck(encoded.first == frame.typeByte, "type byte mismatch")
        var parser = ControlFrameParser(direction: direction)
        do {
            try parser.append(encoded)
            let again = try parser.nextFrame()
            fuzzCheck(again == frame, "\(frame) parses back as \(String(describing: again))")
            fuzzCheck(parser.bufferedCount == 0, "re-parsed frame left bytes")
        } catch {
            fuzzCheck(false, "re-serialised \(frame) does not parse: \(error)")
        }
    }

    /// One valid frame of every type, each direction, plus a few streams of several frames.
    public static func seeds() -> [[UInt8]] {
        let peer = PeerID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10)
        let allocation = AllocationID(high: 0xA1A2_A3A4_A5A6_A7A8, low: 0xB1B2_B3B4_B5B6_B7B8)
        let token = TokenFuzzTarget.validTokenBytes
        let fromClient: [ControlFrame] = [
            .allocate(peerID: peer, token: token),
            .refresh(token: token),
            .release,
        ]
        let fromRelay: [ControlFrame] = [
            .allocated(.init(allocationID: allocation, expiresAt: 1_700_003_600, bandwidthBitsPerSecond: 10_000_000,
                             quotaBytes: 1 << 30, relayPort: 4433, relayAddress: "relay.example.net",
                             observedAddress: "[2001:db8::1]:51820")),
            .peer(.waiting), .peer(.paired), .peer(.peerGone),
            .quota(used: 12345, quota: 1 << 30),
            .refreshed(expiresAt: 1_700_007_200),
            .goAway(.init(reason: .redirect, reconnectInMilliseconds: 500, tryForMilliseconds: 10_000,
                          alternate: "relay2.example.net:4433")),
            .goAway(.init(reason: .shutdown)),
            .status(kind: .throttled, dropped: 42),
            .error(code: .tokenExpired, reason: "token expired — renew it"),
        ]
        var seeds: [[UInt8]] = []
        for frame in fromClient + fromRelay {
            seeds.append([8, 0] + ControlFrameSerializer.encode(frame))
        }
        seeds.append([8, 3] + fromClient.flatMap(ControlFrameSerializer.encode))
        seeds.append([8, 1] + fromRelay.flatMap(ControlFrameSerializer.encode))
        seeds.append([0, 9] + fromRelay.flatMap(ControlFrameSerializer.encode) + [0x82, 0x00])
        return seeds
    }
}
