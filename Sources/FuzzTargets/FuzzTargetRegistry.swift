/// One fuzz target: a name (the corpus folder under `tools/fuzz/corpus/`), the entry function
/// that libFuzzer and the replay tool both call, and its seed inputs.
public struct FuzzTarget: Sendable {
    public let name: String
    public let run: @Sendable (UnsafeRawBufferPointer) -> Void
    public let seeds: @Sendable () -> [[UInt8]]

    public init(name: String, run: @escaping @Sendable (UnsafeRawBufferPointer) -> Void,
                seeds: @escaping @Sendable () -> [[UInt8]]) {
        self.name = name
        self.run = run
        self.seeds = seeds
    }
}

/// Every fuzz target of the project.
public enum FuzzTargetRegistry {
    public static let all: [FuzzTarget] = [
        FuzzTarget(name: "control-frame", run: ControlFrameFuzzTarget.run, seeds: ControlFrameFuzzTarget.seeds),
        FuzzTarget(name: "token", run: TokenFuzzTarget.run, seeds: TokenFuzzTarget.seeds),
        FuzzTarget(name: "yamux-frame", run: YamuxFrameFuzzTarget.run, seeds: YamuxFrameFuzzTarget.seeds),
        FuzzTarget(name: "yamux-session", run: YamuxSessionFuzzTarget.run, seeds: YamuxSessionFuzzTarget.seeds),
        FuzzTarget(name: "tunnel-hello", run: TunnelHelloFuzzTarget.run, seeds: TunnelHelloFuzzTarget.seeds),
        FuzzTarget(name: "named-tunnel", run: NamedTunnelFuzzTarget.run, seeds: NamedTunnelFuzzTarget.seeds),
        FuzzTarget(name: "config", run: ConfigFuzzTarget.run, seeds: ConfigFuzzTarget.seeds),
        FuzzTarget(name: "revocations-file", run: RevocationFileFuzzTarget.run, seeds: RevocationFileFuzzTarget.seeds),
        FuzzTarget(name: "resp", run: RESPFuzzTarget.run, seeds: RESPFuzzTarget.seeds),
        FuzzTarget(name: "fleet-record", run: FleetRecordFuzzTarget.run, seeds: FleetRecordFuzzTarget.seeds),
        FuzzTarget(name: "websocket-server", run: WebSocketServerFuzzTarget.run, seeds: WebSocketServerFuzzTarget.seeds),
        FuzzTarget(name: "egress-proxy", run: EgressProxyFuzzTarget.run, seeds: EgressProxyFuzzTarget.seeds),
    ]

    public static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name == name }
    }
}
