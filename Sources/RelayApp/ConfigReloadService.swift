import Logging
import RelayConfig
import RelayEngine
import ServiceLifecycle
import Synchronization
import UnixSignals

/// SIGHUP: reads the configuration again and applies what may change without a restart —
/// trusted keys, allow/block lists, tiers and limits for new allocations, per-IP rates, the log
/// level. A bad configuration is refused with a log line and the running one stays. Changes to
/// other keys are reported as needing a restart and not applied.
struct ConfigReloadService: Service {
    let reread: RelayApplication.ConfigurationSource
    let current: CurrentConfiguration
    let server: RelayServer
    let level: LogLevelBox
    let logger: Logger
    /// Told the new settings after a reload was applied (the admin token).
    var onReload: @Sendable (RelaySettings) -> Void = { _ in }

    init(reread: @escaping RelayApplication.ConfigurationSource, current: CurrentConfiguration,
         server: RelayServer, level: LogLevelBox, logger: Logger) {
        self.reread = reread
        self.current = current
        self.server = server
        self.level = level
        self.logger = logger
    }

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            await reload()
        }
    }

    /// Reads the configuration again. Keys that need a restart (those not `reloadable` in
    /// the key table) keep their running values and are reported as not applied.
    func reload() async {
        let (oldLoader, _, _) = current.withLock { $0 }
        let loader: RelaySettingsLoader
        let settings: RelaySettings
        let configuration: RelayServerConfiguration
        let restartOnly: [String]
        do {
            let (fresh, _) = try reread([:])
            restartOnly = oldLoader.restartOnlyChanges(to: fresh)
            let pinned = Dictionary(uniqueKeysWithValues: restartOnly.map { ($0, oldLoader.rawValue(of: $0)) })
            (loader, settings) = try reread(pinned)
            configuration = try StartChecks.run(settings)
        } catch {
            logger.error("configuration reload refused; the running configuration stays",
                         metadata: ["key": "\(error.key)", "problem": "\(error.problem)"])
            return
        }
        if !restartOnly.isEmpty {
            logger.warning("reload did not apply keys that need a restart; they keep their running values",
                           metadata: ["keys": "\(restartOnly.joined(separator: ","))"])
        }
        await server.reconfigure(configuration)
        if let newLevel = Logger.Level(rawValue: settings.logging.level) { level.value = newLevel }
        onReload(settings)
        current.withLock { $0 = (loader, settings, configuration) }
        logger.info("configuration reloaded", metadata: [
            "trusted_keys": "\(configuration.tokens.trustedKeys.count)",
            "blocklist": "\(configuration.blocklist.entries.count)",
        ])
    }
}

/// The configuration in force, shared between reloads.
final class CurrentConfiguration: Sendable {
    typealias Value = (loader: RelaySettingsLoader, settings: RelaySettings, configuration: RelayServerConfiguration)
    private let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
    func withLock<T>(_ body: (inout Value) -> T) -> T { value.withLock { body(&$0) } }
}
