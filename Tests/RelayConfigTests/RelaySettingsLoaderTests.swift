import Testing
@testable import RelayConfig

@Suite struct RelaySettingsLoaderTests {
    func load(file: String? = nil, env: [String: String] = [:], flags: [String] = []) throws(ConfigError) -> RelaySettings {
        try RelaySettingsLoader(fileText: file, fileName: "test.toml", environment: env, flags: flags).settings()
    }

    func error(file: String? = nil, env: [String: String] = [:], flags: [String] = []) -> ConfigError? {
        do {
            _ = try load(file: file, env: env, flags: flags)
            return nil
        } catch {
            return error
        }
    }

    @Test func defaultsMatchTheDesign() throws {
        let s = try load()
        #expect(s.server.listenAddress == "0.0.0.0")
        #expect(s.server.listenPort == 4433)
        #expect(s.server.region == "local")
        #expect(s.server.certificatePath == "certs/relay.crt")
        #expect(s.quic.maxIdleTimeout == .seconds(30))
        #expect(s.quic.retry == .auto)
        #expect(s.limits.maxAllocations == 1000)
        #expect(s.limits.maxAllocationsPerKey == 100)
        #expect(s.limits.defaultBandwidthBitsPerSecond == 10_000_000)
        #expect(s.limits.defaultQuotaBytes == 1_000_000_000)
        #expect(s.limits.globalBandwidthBitsPerSecond == 0)
        #expect(s.limits.allocationTimeout == .seconds(86_400))
        #expect(s.limits.pairingTimeout == .seconds(60))
        #expect(s.limits.idleTimeout == .seconds(30))
        #expect(s.limits.keepaliveInterval == .seconds(15))
        #expect(s.freeTier == .init(bandwidthBitsPerSecond: 10_000_000, quotaBytes: 1_000_000_000))
        #expect(s.paidTier == .init(bandwidthBitsPerSecond: 40_000_000, quotaBytes: 4_000_000_000))
        #expect(s.unlimitedTier == .init(bandwidthBitsPerSecond: 0, quotaBytes: 0))
        #expect(s.auth.clockSkew == .seconds(30))
        #expect(s.auth.maxTokenLifetime == .seconds(86_400))
        #expect(s.security.allocationRatePerIP == EventRate(count: 10, window: .seconds(60)))
        #expect(s.security.connectionRatePerIP == EventRate(count: 30, window: .seconds(60)))
        #expect(s.security.acceptRate == EventRate(count: 500, window: .seconds(1)))
        #expect(s.fallback == .init(enabled: true, tls: true))
        #expect(s.metricsListen == HostPort(host: "0.0.0.0", port: 9464))
        #expect(s.admin.enabled == false)
        #expect(s.admin.listen == HostPort(host: "127.0.0.1", port: 9465))
        #expect(s.redis.url == nil)
        #expect(s.redis.keyPrefix == "zrc:")
        #expect(s.redis.heartbeatInterval == .seconds(1))
        #expect(s.logging == .init(level: "info", format: "json"))
    }

    @Test func precedenceIsFlagThenEnvironmentThenFileThenDefault() throws {
        let file = "[limits]\nmax_allocations = 10\nmax_allocations_per_key = 3\npairing_timeout = \"5s\"\n"
        let env = ["ZRC_RELAY_LIMITS_MAX_ALLOCATIONS": "20", "ZRC_RELAY_LIMITS_MAX_ALLOCATIONS_PER_KEY": "4"]
        let flags = ["--limits.max-allocations", "30"]
        let s = try load(file: file, env: env, flags: flags)
        #expect(s.limits.maxAllocations == 30)  // flag beats env and file
        #expect(s.limits.maxAllocationsPerKey == 4)  // env beats file
        #expect(s.limits.pairingTimeout == .seconds(5))  // file beats default
        #expect(s.limits.idleTimeout == .seconds(30))  // default
        let loader = try RelaySettingsLoader(fileText: file, environment: env, flags: flags)
        #expect(loader.source(of: "limits.max_allocations") == .flag)
        #expect(loader.source(of: "limits.max_allocations_per_key") == .environment)
        #expect(loader.source(of: "limits.pairing_timeout") == .file)
        #expect(loader.source(of: "limits.idle_timeout") == .default)
    }

    @Test func flagSpellings() throws {
        #expect(try load(flags: ["--limits.max_allocations=7"]).limits.maxAllocations == 7)
        #expect(try load(flags: ["--limits.max-allocations=8"]).limits.maxAllocations == 8)
        #expect(try load(flags: ["--server.listen-port", "5000"]).server.listenPort == 5000)
    }

    @Test func tomlTypesAndTiers() throws {
        let file = """
            [server]
            listen_port = 5555
            region = "eu-west"
            [limits]
            default_bandwidth_limit = "2Mbps"
            default_quota = "512MiB"
            [tiers.paid]
            quota = "10GB"
            [auth]
            trusted_keys = ["abc", "def"]
            [fallback]
            tls = false
            """
        let s = try load(file: file)
        #expect(s.server.listenPort == 5555)
        #expect(s.server.region == "eu-west")
        #expect(s.freeTier == .init(bandwidthBitsPerSecond: 2_000_000, quotaBytes: 512 * 1_048_576))
        #expect(s.paidTier == .init(bandwidthBitsPerSecond: 8_000_000, quotaBytes: 10_000_000_000))
        #expect(s.auth.trustedKeys == ["abc", "def"])
        #expect(s.fallback.tls == false)
        #expect(try load(env: ["ZRC_RELAY_AUTH_TRUSTED_KEYS": "k1, k2"]).auth.trustedKeys == ["k1", "k2"])
    }

    @Test func unknownKeysAreRejectedInEveryLayer() {
        #expect(error(file: "[limits]\nmax_alocations = 5\n") == ConfigError(key: "limits.max_alocations", problem: "unknown key"))
        #expect(error(file: "[limitz]\nx = 1\n") == ConfigError(key: "limitz", problem: "unknown section"))
        #expect(error(flags: ["--limits.bogus", "1"]) == ConfigError(key: "--limits.bogus", problem: "unknown option", isUsageError: true))
        #expect(error(env: ["ZRC_RELAY_LIMITS_NOPE": "1"])?.key == "ZRC_RELAY_LIMITS_NOPE")
        #expect(error(env: ["ZRC_RELAY_NOPE": "1"]) == nil)  // outside every section: ignored with a warning
        #expect(error(flags: ["stray"])?.key == "stray")
        #expect(error(flags: ["--limits.max-allocations"])
                == ConfigError(key: "--limits.max-allocations", problem: "missing value", isUsageError: true))
    }

    @Test func badValuesNameTheKey() {
        let cases: [(String, String, String)] = [
            ("limits.max_allocations", "-3", "not a non-negative integer"),
            ("limits.pairing_timeout", "soon", "not a duration"),
            ("limits.default_quota", "lots", "not a size"),
            ("limits.default_bandwidth_limit", "fast", "not a bit rate"),
            ("security.allocation_rate_per_ip", "10/fortnight", "not a rate"),
            ("fallback.enabled", "maybe", "not true or false"),
            ("quic.retry", "sometimes", "not one of"),
            ("metrics.listen", "nowhere", "not host:port"),
            ("server.listen_port", "70000", "not a port"),
            ("server.listen_addr", "example.com", "not an IP address"),
            ("logging.level", "loud", "not one of"),
        ]
        for (key, value, message) in cases {
            let e = error(flags: ["--\(key)", value])
            #expect(e?.key == key, "\(key)")
            #expect(e?.problem.contains(message) == true, "\(key): \(e?.problem ?? "no error")")
        }
    }

    @Test func malformedTOMLIsReportedAgainstTheFile() {
        let e = error(file: "[limits\nmax_allocations = ")
        #expect(e?.key == "test.toml")
        #expect(e?.problem.hasPrefix("not valid TOML") == true)
        #expect(error(file: "[limits]\nmax_allocations = 1979-05-27\n")?.key == "limits.max_allocations")
        #expect(error(file: "[auth]\ntrusted_keys = [1, 2]\n")?.problem == "array elements must be strings")
    }

    @Test func inconsistentSettingsAreRefused() {
        #expect(error(flags: ["--limits.keepalive-interval", "40s"])?.key == "limits.keepalive_interval")
        #expect(error(flags: ["--limits.max-allocations", "0"])?.key == "limits.max_allocations")
        #expect(error(flags: ["--quic.max-idle-timeout", "0"])?.key == "quic.max_idle_timeout")
    }

    /// The WebSocket keys (DESIGN §2, §9 v3) load and are checked.
    @Test func websocketKeysLoadAndAreChecked() throws {
        #expect(error(flags: ["--admin.enabled", "false"]) == nil)
        #expect(error(flags: ["--fallback.websocket", "false"]) == nil)
        #expect(error(flags: ["--fallback.websocket-path", "/zz-path", "--fallback.extra-listen", "0.0.0.0:443"]) == nil)
        #expect(error(flags: ["--fallback.websocket-path", "zz-path"])?.key == "fallback.websocket_path")
        #expect(error(flags: ["--fallback.websocket-path", "/a?b"])?.key == "fallback.websocket_path")
        #expect(error(flags: ["--fallback.extra-listen", "nowhere"])?.key == "fallback.extra_listen")
        // Redis (DESIGN §8) is built: its keys load; the URL itself is checked at start.
        #expect(error(env: ["ZRC_RELAY_REDIS_URL": "redis://x"]) == nil)
        #expect(error(flags: ["--redis.key-prefix", "zz:", "--redis.heartbeat-interval", "500ms"]) == nil)
        #expect(error(flags: ["--redis.heartbeat-interval", "10ms"])?.key == "redis.heartbeat_interval")
    }

    /// The admin API (DESIGN §7 v3) is built: on, it needs a token or a token file.
    @Test func adminNeedsATokenWhenOn() {
        #expect(error(flags: ["--admin.enabled", "true"])?.key == "admin.token")
        #expect(error(flags: ["--admin.enabled", "true", "--admin.token-file", "/etc/t"]) == nil)
        #expect(error(file: "[admin]\nlisten = \"127.0.0.1:1\"\n") == nil)
        #expect(error(flags: ["--auth.revocations-file", "/tmp/r"]) == nil)
        // The Unix socket alone needs no token; no listener at all is refused.
        #expect(error(flags: ["--admin.enabled", "true", "--admin.listen", "", "--admin.unix-socket", "/tmp/a.sock"]) == nil)
        #expect(error(flags: ["--admin.enabled", "true", "--admin.listen", ""])?.key == "admin.listen")
        #expect(Defaults.byName["admin.token"]?.reloadable == true && Defaults.byName["admin.listen"]?.reloadable == false)
    }

    @Test func effectiveLinesRedactSecrets() throws {
        let loader = try RelaySettingsLoader(fileText: nil, environment: [:], flags: [])
        let lines = loader.effectiveLines()
        #expect(lines.contains("server.listen_port = \"4433\"  # default"))
        #expect(Defaults.byName["admin.token"]?.isSecret == true && Defaults.byName["redis.url"]?.isSecret == true)
    }
}

@Suite struct RelaySettingsV3Tests {
    func load(env: [String: String] = [:], flags: [String] = [], file: String? = nil) throws(ConfigError) -> RelaySettingsLoader {
        try RelaySettingsLoader(fileText: file, fileName: "test.toml", environment: env, flags: flags)
    }

    @Test func paidTierIsFourTimesTheEffectiveFreeTier() throws {
        let s = try load(file: "[tiers.free]\nbandwidth_limit = \"3Mbps\"\nquota = \"1GB\"\n").settings()
        #expect(s.paidTier == .init(bandwidthBitsPerSecond: 12_000_000, quotaBytes: 4_000_000_000))
    }

    @Test func orchestratorVariablesAreIgnoredAndListed() throws {
        let env = [
            "ZRC_RELAY_SERVICE_HOST": "10.0.0.1", "ZRC_RELAY_SERVICE_PORT": "4433", "ZRC_RELAY_PORT": "udp://10.0.0.1:4433",
            "ZRC_RELAY_PORT_4433_UDP": "udp://10.0.0.1:4433", "ZRC_RELAY_PORT_4433_UDP_ADDR": "10.0.0.1",
            "ZRC_RELAY_PORT_4433_UDP_PORT": "4433", "ZRC_RELAY_PORT_4433_UDP_PROTO": "udp",
            "ZRC_RELAY_METRICS_PORT": "tcp://10.0.0.2:9464", "ZRC_RELAY_METRICS_SERVICE_HOST": "10.0.0.2",
            "ZRC_RELAY_METRICS_PORT_9464_TCP_ADDR": "10.0.0.2", "ZRC_RELAY_SOMETHING_ELSE": "x",
            "ZRC_RELAY_LIMITS_MAX_ALLOCATIONS": "50",
        ]
        let loader = try load(env: env)
        #expect(try loader.settings().limits.maxAllocations == 50)
        #expect(loader.ignoredEnvironmentNames.count == env.count - 1)
        #expect(!loader.ignoredEnvironmentNames.contains("ZRC_RELAY_LIMITS_MAX_ALLOCATIONS"))
    }

    @Test func aTypoInsideASectionIsAnError() {
        #expect(throws: ConfigError.self) { try load(env: ["ZRC_RELAY_LIMITS_MAX_ALOCATIONS": "5"]) }
    }

    @Test func anEmptyEnvironmentValueMeansUnset() throws {
        let s = try load(env: ["ZRC_RELAY_LIMITS_MAX_ALLOCATIONS": ""]).settings()
        #expect(s.limits.maxAllocations == 1000)
    }

    @Test func unknownFlagsAndMissingValuesAreUsageErrors() {
        for flags in [["--frobnicate"], ["--frobnicate", "x"], ["--limits.max-allocations"], ["stray"]] {
            do {
                _ = try load(flags: flags)
                Issue.record("\(flags) accepted")
            } catch {
                #expect(error.isUsageError, "\(flags)")
            }
        }
        do {
            _ = try load(flags: ["--limits.max-allocations", "many"]).settings()
            Issue.record("bad value accepted")
        } catch {
            #expect(!error.isUsageError)
        }
    }
}
