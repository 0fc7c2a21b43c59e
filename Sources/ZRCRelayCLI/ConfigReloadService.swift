import Logging
import RelayConfig
import RelayServer
import ServiceLifecycle
import Synchronization
import UnixSignals

/// SIGHUP: reads the configuration again and applies what may change without a restart —
/// trusted keys, allow/block lists, tiers and limits for new allocations, per-IP rates, the log
/// level. A bad configuration is refused with a log line and the running one stays. Changes to
/// other keys are reported as needing a restart and not applied.
struct ConfigReloadService: Service {
    let options: ConfigOptions
    let current: CurrentConfiguration
    let server: RelayServer
    let level: LogLevelBox
    let logger: Logger

    init(options: ConfigOptions, settings: RelaySettings, configuration: RelayServerConfiguration, server: RelayServer,
         level: LogLevelBox, logger: Logger) {
        self.options = options
        self.current = CurrentConfiguration((settings, configuration))
        self.server = server
        self.level = level
        self.logger = logger
    }

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            await reload()
        }
    }

    func reload() async {
        let (oldSettings, oldConfiguration) = current.withLock { $0 }
        let settings: RelaySettings
        var configuration: RelayServerConfiguration
        do {
            settings = try options.read().1
            configuration = try settings.relayConfiguration()
        } catch {
            logger.error("configuration reload refused; the running configuration stays",
                         metadata: ["key": "\(error.key)", "problem": "\(error.problem)"])
            return
        }
        // Only trusted keys change in the token rules; audience, skew and lifetime need a restart.
        configuration.tokens.audience = oldConfiguration.tokens.audience
        configuration.tokens.clockSkewSeconds = oldConfiguration.tokens.clockSkewSeconds
        configuration.tokens.maxTokenLifetimeSeconds = oldConfiguration.tokens.maxTokenLifetimeSeconds
        configuration.relayPort = oldConfiguration.relayPort
        configuration.publicAddress = oldConfiguration.publicAddress
        let restartOnly = Self.restartOnlyChanges(old: oldSettings, new: settings)
        if !restartOnly.isEmpty {
            logger.warning("reload ignores keys that need a restart", metadata: ["keys": "\(restartOnly.joined(separator: ","))"])
        }
        await server.reconfigure(configuration)
        if let newLevel = Logger.Level(rawValue: settings.logging.level) { level.value = newLevel }
        current.withLock { $0 = (settings, configuration) }
        logger.info("configuration reloaded", metadata: [
            "trusted_keys": "\(configuration.tokens.trustedKeys.count)",
            "blocklist": "\(configuration.blocklist.entries.count)",
        ])
    }

    /// Sections whose change a reload cannot apply.
    static func restartOnlyChanges(old: RelaySettings, new: RelaySettings) -> [String] {
        var changed: [String] = []
        if old.server != new.server { changed.append("server") }
        if old.quic != new.quic { changed.append("quic") }
        if old.auth.audience != new.auth.audience || old.auth.clockSkew != new.auth.clockSkew
            || old.auth.maxTokenLifetime != new.auth.maxTokenLifetime { changed.append("auth") }
        if old.security.acceptRate != new.security.acceptRate { changed.append("security.accept_rate") }
        if old.limits.keepaliveInterval != new.limits.keepaliveInterval { changed.append("limits.keepalive_interval") }
        if old.fallback != new.fallback { changed.append("fallback") }
        if old.metricsListen != new.metricsListen { changed.append("metrics") }
        if old.admin != new.admin { changed.append("admin") }
        if old.redisURL != new.redisURL { changed.append("redis") }
        if old.logging.format != new.logging.format { changed.append("logging.format") }
        return changed
    }
}

/// The configuration in force, shared between reloads.
final class CurrentConfiguration: Sendable {
    private let value: Mutex<(RelaySettings, RelayServerConfiguration)>
    init(_ initial: (RelaySettings, RelayServerConfiguration)) { value = Mutex(initial) }
    func withLock<T>(_ body: (inout (RelaySettings, RelayServerConfiguration)) -> T) -> T { value.withLock { body(&$0) } }
}
