import NIOWebSocket

/// The rules a data frame must pass on a byte-stream WebSocket (DESIGN §9): binary messages
/// only, any split, none over 1 MiB, frames from a client masked and frames from a server not.
/// Pure: the channel handler feeds it each frame's header and acts on the verdict.
public struct WebSocketMessageRules: Sendable {
    /// The largest message (all its fragments) either side accepts.
    public static let maximumMessageBytes = 1 << 20

    /// Whose frames are judged.
    public enum Sender: Sendable { case client, server }

    /// What to do with a frame.
    public enum Verdict: Equatable, Sendable {
        /// Its payload is stream bytes.
        case data
        /// A control frame (ping, pong, close), for the handler.
        case control
        /// Close the connection with this code and reason.
        case close(WebSocketErrorCode, String)
    }

    private let sender: Sender
    private var inMessage = false
    private var messageBytes = 0

    public init(frameSender: Sender) {
        self.sender = frameSender
    }

    /// Judges one frame.
    public mutating func judge(opcode: WebSocketOpcode, fin: Bool, length: Int, masked: Bool, reservedBits: Bool = false) -> Verdict {
        if reservedBits { return .close(.protocolError, "reserved bits set without an extension") }
        if masked != (sender == .client) {
            return .close(.protocolError, sender == .client ? "client frames must be masked" : "server frames must not be masked")
        }
        switch opcode {
        case .ping, .pong, .connectionClose:
            guard fin, length <= 125 else { return .close(.protocolError, "malformed control frame") }
            return .control
        case .binary:
            guard !inMessage else { return .close(.protocolError, "a new message inside a fragmented one") }
            messageBytes = 0
        case .continuation:
            guard inMessage else { return .close(.protocolError, "a continuation without a message") }
        case .text:
            return .close(.unacceptableData, "only binary messages are accepted")
        default:
            return .close(.protocolError, "unknown opcode")
        }
        messageBytes += length
        guard messageBytes <= Self.maximumMessageBytes else {
            return .close(.messageTooLarge, "message over \(Self.maximumMessageBytes) bytes")
        }
        inMessage = !fin
        return .data
    }
}
