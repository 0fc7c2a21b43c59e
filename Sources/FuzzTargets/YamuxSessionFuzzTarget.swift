import NIOCore
import Yamux

/// `YamuxSession`, either role, driven by a program read from the input.
///
/// Input: `setup u8 | op…`. `setup` picks the role and a configuration (small or default
/// limits, fast or slow keepalive). Each op (`op % 14`) feeds the session peer bytes or a
/// peer frame, advances time (`tick`), or makes an application call (`openStream`, `write`,
/// `consumed`, `acceptStream`, `closeWrite`, `reset`, `ping`, `goAway`, `close`,
/// `transportClosed`); its operands come from the following bytes. After every op all
/// actions are drained. Properties (the documented contract of `YamuxSessionAction`):
/// - every stream the application learns of (`streamOpened` or `openStream()`) ends with
///   exactly one `streamClosed` or `streamReset`; no event names a stream the application
///   does not know; inbound ids have the peer's parity;
/// - data delivered and not yet consumed never exceeds the receive window;
/// - no Data frame we write is longer than `maximumOutboundDataFrameLength`;
/// - `sessionClosed` comes once, after every stream ended, and nothing follows it.
public enum YamuxSessionFuzzTarget {
    static let epoch = ContinuousClock.now
    static let dataSizes = [0, 1, 5, 100, 4096, 65_536, 65_537, 262_144, 262_145, 1_048_577]

    struct Model {
        let role: YamuxRole
        let receiveWindow: Int
        let maximumFrame: Int
        var live: Set<UInt32> = []
        var unconsumed: [UInt32: Int] = [:]
        var ended = false

        func isPeerParity(_ id: UInt32) -> Bool {
            id != 0 && (role == .client ? id % 2 == 0 : id % 2 == 1)
        }

        mutating func observe(_ action: YamuxSessionAction) {
            fuzzCheck(!ended, "\(action) after sessionClosed")
            switch action {
            case .writeFrame(let frame):
                if frame.header.type == .data {
                    fuzzCheck(frame.payload.readableBytes <= maximumFrame, "wrote a Data frame over the frame limit")
                    fuzzCheck(Int(frame.header.length) == frame.payload.readableBytes, "Data header length differs from payload")
                }
            case .streamOpened(let id):
                fuzzCheck(isPeerParity(id), "inbound stream \(id) has our parity")
                fuzzCheck(live.insert(id).inserted, "stream \(id) announced twice")
            case .streamData(let id, let bytes):
                fuzzCheck(live.contains(id), "data for unknown stream \(id)")
                let pending = unconsumed[id, default: 0] + bytes.readableBytes
                fuzzCheck(pending <= receiveWindow, "\(pending) unconsumed bytes exceed the \(receiveWindow)-byte window")
                unconsumed[id] = pending
            case .streamHalfClosed(let id), .windowOpened(let id):
                fuzzCheck(live.contains(id), "\(action) for unknown stream \(id)")
            case .streamClosed(let id), .streamReset(let id, _):
                fuzzCheck(live.remove(id) != nil, "\(action) for a stream that is not open")
                unconsumed[id] = nil
            case .sessionClosed:
                fuzzCheck(live.isEmpty, "session closed with streams \(live.sorted()) never ended")
                ended = true
            case .pingRTT, .pingTimedOut, .goAwayReceived:
                break
            }
        }
    }

    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let setup = input.u8()
        let role: YamuxRole = setup & 1 == 0 ? .client : .server
        let small = setup & 2 != 0
        let configuration = YamuxConfiguration(
            receiveWindow: setup & 4 == 0 ? 262_144 : 1_048_576,
            maximumStreams: small ? 3 : 1024,
            acceptBacklog: small ? 2 : 256,
            maximumOutboundDataFrameLength: small ? 100 : 65_536,
            keepAliveInterval: setup & 8 == 0 ? .seconds(30) : .milliseconds(500),
            keepAliveTimeout: setup & 16 == 0 ? .seconds(10) : .milliseconds(300),
            maximumOutstandingPings: setup & 32 == 0 ? 16 : 1)
        var session = YamuxSession(role: role, configuration: configuration, now: epoch)
        var model = Model(role: role, receiveWindow: Int(max(configuration.receiveWindow, 262_144)),
                          maximumFrame: configuration.maximumOutboundDataFrameLength)
        var now = epoch
        var steps = 0
        while !input.isAtEnd && steps < 1000 {
            steps += 1
            let op = input.u8()
            switch op % 14 {
            case 0:
                let bytes = input.take(Int(input.u8()))
                session.receive(ByteBuffer(bytes: bytes), now: now)
            case 1:
                let frame = peerFrame(&input, model: model)
                if op & 0x80 == 0 {
                    session.receive(frame: frame, now: now)
                } else {
                    var bytes = ByteBuffer()
                    bytes.writeYamuxFrame(frame)
                    session.receive(bytes, now: now)
                }
            case 2:
                now = now + .milliseconds(Int64(input.u16()))
                session.tick(now: now)
            case 3:
                if let deadline = session.nextDeadline {
                    now = max(now, deadline)
                    session.tick(now: now)
                }
            case 4:
                if let id = try? session.openStream() {
                    fuzzCheck(id != 0 && !model.isPeerParity(id), "opened stream \(id) has the peer's parity")
                    fuzzCheck(model.live.insert(id).inserted, "openStream returned the open stream \(id)")
                }
            case 5:
                let id = streamID(&input, model: model)
                let size = dataSizes[Int(input.u8()) % dataSizes.count]
                if let taken = try? session.write(streamID: id, ByteBuffer(repeating: 0x42, count: size)) {
                    fuzzCheck(taken >= 0 && taken <= size, "write took \(taken) of \(size) bytes")
                }
            case 6:
                let id = streamID(&input, model: model)
                let pending = model.unconsumed[id, default: 0]
                let count = input.u8() & 1 == 0 ? pending : min(pending, Int(input.u16()))
                session.consumed(streamID: id, count: count)
                if pending > 0 { model.unconsumed[id] = pending - count }
            case 7:
                try? session.acceptStream(streamID(&input, model: model))
            case 8:
                try? session.closeWrite(streamID: streamID(&input, model: model))
            case 9:
                session.reset(streamID: streamID(&input, model: model))
            case 10:
                _ = try? session.ping(now: now)
            case 11:
                session.goAway(YamuxGoAwayCode(networkCode: UInt32(input.u8() % 4)))
            case 12:
                if input.u8() == 0 { session.close() }
            default:
                if input.u8() == 0 { session.transportClosed() }
            }
            while let action = session.nextAction() {
                model.observe(action)
            }
            fuzzCheck(session.isActive != model.ended, "isActive disagrees with sessionClosed")
        }
    }

    /// A stream id: usually one the application knows, else a small id or any UInt32.
    static func streamID(_ input: inout FuzzInput, model: Model) -> UInt32 {
        let selector = input.u8()
        if selector & 0x80 != 0, !model.live.isEmpty {
            let known = model.live.sorted()
            return known[Int(selector & 0x7F) % known.count]
        }
        if selector == 0x7F { return input.u32() }
        return UInt32(selector % 10)
    }

    /// A frame as the peer might send it: `type u8 | flags u8 | stream | length or size`.
    static func peerFrame(_ input: inout FuzzInput, model: Model) -> YamuxFrame {
        let type = input.u8()
        let flags = YamuxFrameFlags(rawValue: UInt16(input.u8() & 0x1F))
        let id = streamID(&input, model: model)
        switch type % 4 {
        case 0:
            let size = dataSizes[Int(input.u8()) % dataSizes.count]
            return .data(streamID: id, flags: flags, payload: ByteBuffer(repeating: 0x5A, count: size))
        case 1:
            let delta = input.u8() & 0x80 == 0 ? UInt32(input.u16()) << UInt32(input.u8() % 17) : input.u32()
            return .windowUpdate(streamID: id, flags: flags, delta: delta)
        case 2:
            return .ping(flags: flags, opaque: UInt32(input.u8() % 4))
        default:
            return .goAway(YamuxGoAwayCode(networkCode: UInt32(input.u8() % 4)))
        }
    }

    public static func seeds() -> [[UInt8]] {
        // op 1 = peer frame (type, flags, stream, operand); op 4 = openStream; op 5 = write; op 6 = consumed.
        let server: [UInt8] = [
            0x01,  // server role, default limits
            1, 1, 0x01, 1, 0x00, 0x00,  // peer WindowUpdate SYN on stream 1, delta 0
            7, 0x80,  // accept it
            1, 0, 0x00, 0x80, 3,  // peer Data "x100" on stream 1
            6, 0x80, 0,  // consume all
            5, 0x80, 3,  // write 100 bytes
            4,  // open stream 2
            1, 1, 0x02, 2, 0x00, 0x04, 0x00,  // peer ACK on stream 2, delta 1024
            1, 2, 0x01, 0, 0,  // peer ping SYN
            10,  // our ping
            1, 2, 0x02, 0, 0,  // its ACK
            8, 0x80,  // closeWrite
            1, 1, 0x04, 1, 0, 0, 0,  // peer FIN on stream 1
            2, 0x10, 0x00,  // tick
            11, 0,  // GoAway normal
            1, 3, 0, 0, 0,  // peer GoAway normal
            12, 0,  // close
        ]
        var client = server
        client[0] = 0x0A  // client role, small limits, fast keepalive
        var seeds = [server, client]
        // The hashicorp frames as raw peer bytes (op 0 = raw bytes), for both roles.
        for role: UInt8 in [0, 1] {
            var program = [role]
            for frame in YamuxFrameFuzzTarget.hashicorpFrames {
                program += [0, UInt8(frame.count)] + frame
                program += [7, 0x80, 6, 0x80, 0]
            }
            seeds.append(program)
        }
        seeds.append([0x28] + [UInt8](repeating: 3, count: 40))  // keepalive until it fails
        return seeds
    }
}
