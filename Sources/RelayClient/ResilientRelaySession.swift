import Foundation
import QUICTransport
import RelayCore
import WebSocketTransport

/// One peer's relay session that rides out what the relay and the network do to it (DESIGN
/// §8): the I/O shell around `ClientSessionMachine`. It opens connections (QUIC or the TCP
/// fallback) as the machine says, feeds it everything the relay sends, and reports every
/// state change. Datagrams from the other peer arrive on `datagrams`.
///
/// Everything the machine sees passes through one inbox consumed by `run()`, so the machine
/// itself needs no lock; events of a connection that was replaced are ignored.
public final class ResilientRelaySession: Sendable {
    /// One state change, as the CLI prints it.
    public struct StateChange: Sendable {
        public var at: Date
        public var state: ClientSessionMachine.State
        public var reason: String
    }

    /// How to reach the relay (besides the machine's configuration).
    public struct Options: Sendable {
        public var serverName: String?
        public var tls: Bool
        public var caPath: String?
        /// The HTTP proxy for the TCP and WebSocket transports.
        public var proxy: HTTPProxy?
        /// The WebSocket path on the relay's address (`wss://host:port<path>`).
        public var websocketPath: String
        /// Where a fresh token comes from (DESIGN §8 refresh): asked before the allocation
        /// expires; a token it returns is sent in REFRESH and used for later reconnects.
        public var tokenSource: (@Sendable () async -> [UInt8]?)?

        public init(serverName: String? = nil, tls: Bool = true, caPath: String? = nil, proxy: HTTPProxy? = nil,
                    websocketPath: String = "/zrc-relay/v1", tokenSource: (@Sendable () async -> [UInt8]?)? = nil) {
            self.tokenSource = tokenSource
            self.serverName = serverName
            self.tls = tls
            self.caPath = caPath
            self.proxy = proxy
            self.websocketPath = websocketPath
        }
    }

    private enum Input: Sendable {
        case tick
        case freshToken([UInt8]?)
        case opened(generation: Int, RelayClient)
        case event(generation: Int, RelayClientEvent)
        case connectFailed(generation: Int, String)
        case probed(Bool)
        case send([UInt8])
        case close
        case release
    }

    public let states: AsyncStream<StateChange>
    public let datagrams: AsyncStream<[UInt8]>
    /// Control frames as they arrive (for logs).
    public let frames: AsyncStream<ControlFrame>
    private let stateSink: AsyncStream<StateChange>.Continuation
    private let datagramSink: AsyncStream<[UInt8]>.Continuation
    private let frameSink: AsyncStream<ControlFrame>.Continuation
    private let inbox: AsyncStream<Input>
    private let inboxSink: AsyncStream<Input>.Continuation
    private let endpoint: RelayClientEndpoint
    private let configuration: ClientSessionMachine.Configuration
    private let options: Options
    private let peerID: PeerID
    private let initialToken: [UInt8]

    public init(endpoint: RelayClientEndpoint, configuration: ClientSessionMachine.Configuration, options: Options,
                peerID: PeerID, token: [UInt8]) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.options = options
        self.peerID = peerID
        self.initialToken = token
        (states, stateSink) = AsyncStream.makeStream(of: StateChange.self, bufferingPolicy: .bufferingNewest(1000))
        (datagrams, datagramSink) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .bufferingNewest(10_000))
        (frames, frameSink) = AsyncStream.makeStream(of: ControlFrame.self, bufferingPolicy: .bufferingNewest(1000))
        (inbox, inboxSink) = AsyncStream.makeStream(of: Input.self, bufferingPolicy: .unbounded)
    }

    /// Sends a datagram now, or after the next allocation (bounded queue, oldest dropped).
    public func send(_ payload: [UInt8]) { inboxSink.yield(.send(payload)) }

    /// Ends the session.
    public func close() { inboxSink.yield(.close) }

    /// Ends the allocation for both peers (RELEASE on the current connection), then the session.
    public func release() { inboxSink.yield(.release) }

    /// Runs the session until it fails or is closed; returns the final state.
    @discardableResult
    public func run() async -> ClientSessionMachine.State {
        let clock = ContinuousClock()
        let origin = clock.now
        var machine = ClientSessionMachine(configuration: configuration)
        var generation = 0
        var current: RelayClient?
        var heardOnCurrent = false
        var token = initialToken
        /// When to ask the token source, from the latest ALLOCATED or REFRESHED.
        var refreshAt: Date?
        var refreshAsked = false
        let ticker = Task { [inboxSink] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                inboxSink.yield(.tick)
            }
        }
        defer {
            ticker.cancel()
            current?.close()
            stateSink.finish()
            datagramSink.finish()
            frameSink.finish()
        }
        func perform(_ actions: [ClientSessionMachine.Action]) {
            for action in actions {
                switch action {
                case .connect(let transport, let address):
                    current?.close()
                    current = nil
                    heardOnCurrent = false
                    generation += 1
                    open(transport, address: address, token: token, generation: generation)
                case .allocate:
                    break  // RelayClient sends ALLOCATE as soon as the connection is up
                case .sendDatagram(let payload):
                    current?.send(payload)
                case .closeConnection:
                    current?.close()
                    current = nil
                    generation += 1
                case .probe(_, let address):
                    probe(address)
                case .stateChanged(let state, let reason):
                    stateSink.yield(StateChange(at: Date(), state: state, reason: reason))
                }
            }
        }
        perform(machine.start(now: clock.now - origin))
        for await input in inbox {
            let now = clock.now - origin
            switch input {
            case .tick:
                // A transport that is up counts as an answer before the connect timeout is
                // judged: abandoning a QUIC attempt whose ALLOCATE already went out would let
                // that ALLOCATE replace the next attempt's connection at the relay.
                if let current, !heardOnCurrent, current.isEstablished {
                    heardOnCurrent = true
                    perform(machine.connected(now: now))
                }
                // The QUIC connection's own idle timeout (and the relay's PINGs) watch an open
                // connection; a live one counts as heard.
                if current != nil, heardOnCurrent { machine.heard(now: now) }
                perform(machine.tick(now: now))
                if let at = refreshAt, !refreshAsked, Date() >= at, let source = options.tokenSource {
                    refreshAsked = true
                    let inboxSink = self.inboxSink
                    Task { inboxSink.yield(.freshToken(await source())) }
                }
            case .freshToken(let fresh):
                refreshAsked = false
                refreshAt = nil
                if let fresh, fresh != token {
                    token = fresh
                    current?.refresh(token: fresh)
                } else {
                    // Nothing new: ask again in 10 s.
                    refreshAt = Date().addingTimeInterval(10)
                }
            case .opened(let g, let client):
                if g == generation { current = client } else { client.close() }
            case .event(let g, let event):
                guard g == generation else { continue }
                switch event {
                case .frame(let frame):
                    frameSink.yield(frame)
                    switch frame {
                    case .allocated(let allocated): refreshAt = Self.refreshTime(expiresAt: allocated.expiresAt)
                    case .refreshed(let expiresAt): refreshAt = Self.refreshTime(expiresAt: expiresAt)
                    default: break
                    }
                    if !heardOnCurrent {
                        heardOnCurrent = true
                        perform(machine.connected(now: now))
                    }
                    perform(machine.received(frame, now: now))
                case .datagram(let payload):
                    machine.heard(now: now)
                    datagramSink.yield(payload)
                case .closed(let reason):
                    current = nil
                    perform(heardOnCurrent ? machine.lost("\(reason)", now: now) : machine.connectFailed("\(reason)", now: now))
                }
            case .connectFailed(let g, let reason):
                guard g == generation else { continue }
                perform(machine.connectFailed(reason, now: now))
            case .probed(let answered):
                if answered { perform(machine.probeSucceeded(now: now)) }
            case .send(let payload):
                perform(machine.send(payload))
            case .close:
                perform(machine.close(now: now))
            case .release:
                current?.release()
                // Let RELEASE leave before the connection closes.
                try? await Task.sleep(for: .milliseconds(100))
                perform(machine.close(now: clock.now - origin))
            }
            if machine.state.isFinal { break }
        }
        return machine.state
    }

    /// When to ask for a fresh token: a fifth of the time left before `expiresAt`, at most 60 s
    /// before it (and never in the past).
    static func refreshTime(expiresAt: UInt64, now: Date = Date()) -> Date {
        let left = max(0, Double(expiresAt) - now.timeIntervalSince1970)
        return now.addingTimeInterval(max(0, left - min(60, left / 5)))
    }

    private func open(_ transport: ClientSessionMachine.Transport, address: String, token: [UInt8], generation: Int) {
        let (endpoint, options, peerID, inboxSink) = (self.endpoint, self.options, self.peerID, self.inboxSink)
        let timeout = configuration.connectTimeout
        Task {
            do {
                let client: RelayClient
                switch transport {
                case .quic:
                    guard let relay = Self.resolve(address) else { throw RelayClientError.badAddress(address) }
                    client = try await RelayClient.connect(client: endpoint, relay: relay, serverName: options.serverName,
                                                           peerID: peerID, token: token)
                case .tcp:
                    guard let relay = Self.resolve(address) else { throw RelayClientError.badAddress(address) }
                    client = try await RelayClient.connectTCP(client: endpoint, relay: relay, serverName: options.serverName,
                                                              peerID: peerID, token: token, tls: options.tls,
                                                              caPath: options.caPath, proxy: options.proxy, timeout: timeout)
                case .websocket:
                    guard let (host, port) = HostPortParser.split(address) else { throw RelayClientError.badAddress(address) }
                    let target = WebSocketAddress(tls: options.tls, host: host, port: port, path: options.websocketPath)
                    client = try await RelayClient.connectWebSocket(client: endpoint, address: target, serverName: options.serverName,
                                                                    peerID: peerID, token: token, caPath: options.caPath,
                                                                    proxy: options.proxy, timeout: timeout)
                }
                inboxSink.yield(.opened(generation: generation, client))
                for await event in client.events { inboxSink.yield(.event(generation: generation, event)) }
            } catch {
                inboxSink.yield(.connectFailed(generation: generation, "\(error)"))
            }
        }
    }

    private func probe(_ address: String) {
        let inboxSink = self.inboxSink
        Task {
            var answered = false
            if let relay = Self.resolve(address) { answered = await QUICReachability.answers(relay, timeout: .seconds(2)) }
            inboxSink.yield(.probed(answered))
        }
    }

    /// `host:port` or `[v6]:port`, resolved.
    static func resolve(_ address: String) -> TransportAddress? {
        guard let (host, port) = HostPortParser.split(address) else { return nil }
        return TransportAddress.resolve(host: host, port: UInt16(port))
    }
}
