/// What a session knows about one open stream: its lifecycle and both flow-control windows.
struct YamuxStream: Hashable, Sendable {
    /// The stream id.
    let id: UInt32
    /// The stream's lifecycle.
    var stateMachine: YamuxStreamStateMachine
    /// What the peer may send us.
    var receiveWindow: YamuxReceiveWindowManager
    /// What we may send the peer.
    var sendWindow: YamuxSendWindowManager

    /// Creates a stream in `idle` with both windows at their initial size.
    /// - Parameters:
    ///   - id: The stream id.
    ///   - receiveWindow: The receive window to offer.
    init(id: UInt32, receiveWindow: UInt32) {
        self.id = id
        self.stateMachine = YamuxStreamStateMachine()
        self.receiveWindow = YamuxReceiveWindowManager(targetWindow: receiveWindow)
        self.sendWindow = YamuxSendWindowManager()
    }
}
