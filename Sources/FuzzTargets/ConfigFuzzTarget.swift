import RelayConfig

/// `RelaySettingsLoader(fileText:fileName:environment:flags:)` then `.settings()`.
///
/// Input: `options u8 | TOML text ␀ environment ␀ flags`: the environment part is up to 8
/// `NAME=VALUE` lines, the flags part up to 16 lines, one argument each. `options` bit 0 means
/// no file at all. Errors are expected; the properties are that nothing traps, that loading is
/// deterministic (a second loader gives the same settings or the same error), and that a loader
/// that was built can always describe itself (`effectiveLines`, `source(of:)`).
public enum ConfigFuzzTarget {
    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let options = input.u8()
        let parts = input.rest().split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        let fileText = options & 1 == 0 ? String(decoding: parts.first ?? [], as: UTF8.self) : nil
        var environment: [String: String] = [:]
        if parts.count > 1 {
            for line in String(decoding: parts[1], as: UTF8.self).split(separator: "\n").prefix(8) {
                let pieces = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                environment[String(pieces[0])] = pieces.count > 1 ? String(pieces[1]) : ""
            }
        }
        let flags = parts.count > 2
            ? String(decoding: parts[2], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).prefix(16).map(String.init)
            : []

        let first = load(fileText: fileText, environment: environment, flags: flags)
        let second = load(fileText: fileText, environment: environment, flags: flags)
        fuzzCheck(first == second, "loading the same input twice gave different results")
    }

    /// The part of an input before the environment and flags (options byte, TOML text and its
    /// NUL), and the rest. The replay smoke mutates only the rest: toml++ (inside TOMLKit 0.6.0)
    /// asserts on some malformed TOML in debug builds (see tools/fuzz/README.md, "Known crashes"),
    /// so TOML texts are only ever taken from the checked corpus there.
    public static func splitAtEnvironment(_ input: [UInt8]) -> (head: [UInt8], tail: [UInt8]) {
        guard input.count > 1, let nul = input[1...].firstIndex(of: 0) else { return (input + [0], []) }
        return (Array(input[...nul]), Array(input[(nul + 1)...]))
    }

    enum Outcome: Equatable {
        case settings(RelaySettings)
        case error(ConfigError)
    }

    static func load(fileText: String?, environment: [String: String], flags: [String]) -> Outcome {
        do {
            let loader = try RelaySettingsLoader(fileText: fileText, fileName: "fuzz.toml", environment: environment, flags: flags)
            let lines = loader.effectiveLines()
            fuzzCheck(!lines.isEmpty, "a loader lists no keys")
            for key in loader.flags.keys { fuzzCheck(loader.source(of: key) == .flag, "flag \(key) not reported as a flag") }
            return .settings(try loader.settings())
        } catch {
            return .error(error)
        }
    }

    public static func seeds() -> [[UInt8]] {
        let toml = """
            [server]
            listen_addr = "::1"
            listen_port = 4433
            region = "eu-1"

            [limits]
            max_allocations = 10
            default_bandwidth_limit = "10Mbps"
            default_quota = "512MiB"
            pairing_timeout = "60s"

            [tiers.paid]
            quota = "4GB"

            [auth]
            trusted_keys = ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]
            audience = "fleet-a"

            [security]
            allocation_rate_per_ip = "10/min"
            blocklist = ["10.0.0.0/8"]
            """
        let environment = "ZRC_RELAY_SERVER_LISTEN_PORT=5000\nZRC_RELAY_LOGGING_FORMAT=text"
        let flags = "--quic.retry\nalways\n--limits.idle-timeout=15m\n--admin.enabled\nfalse"
        func seed(_ options: UInt8, _ parts: [String]) -> [UInt8] {
            [options] + Array(parts.joined(separator: "\0").utf8)
        }
        return [
            seed(0, [toml]),
            seed(0, [toml, environment, flags]),
            seed(1, ["", environment, flags]),
            seed(0, ["[limits]\nkeepalive_interval = \"1h\"\n"]),
            seed(0, ["[server\nlisten_port = 99999\n"]),
            seed(0, ["[[server]]\nx = 1979-05-27T07:32:00Z\n"]),
            seed(1, ["", "ZRC_RELAY_NOPE=1", "--nope=1"]),
        ]
    }
}
