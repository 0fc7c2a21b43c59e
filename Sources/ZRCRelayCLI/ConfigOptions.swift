import ArgumentParser
import Foundation
import RelayApp
import RelayConfig

/// `--config FILE` plus `--section.key VALUE` settings, shared by `serve` and `config check`.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "TOML configuration file.")
    var config: String?

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Settings as --section.key VALUE (see config/zrc-relay.toml).", valueName: "setting"))
    var settings: [String] = []

    /// Reads every layer (again, on reload); throws the first problem.
    func read(pinned: [String: RawConfigValue?] = [:]) throws(ConfigError) -> (RelaySettingsLoader, RelaySettings) {
        var text: String?
        if let config {
            text = try ConfigFileReader.read(config, key: "--config")
        }
        let loader = try RelaySettingsLoader(fileText: text, fileName: config ?? "config",
                                             environment: ProcessInfo.processInfo.environment, flags: settings, pinned: pinned)
        return (loader, try loader.settings())
    }

    /// Reads every layer; on a problem prints one line naming the key (and, for an unknown
    /// flag or a missing value, the command's usage) and exits 2.
    func load(command: any ParsableCommand.Type) throws -> (RelaySettingsLoader, RelaySettings) {
        do {
            return try read()
        } catch {
            if error.isUsageError {
                let usage = ZRCRelay.helpMessage(for: command)
                FileHandle.standardError.write(Data("zrc-relay: \(error)\n\n\(usage)\n".utf8))
            } else {
                FileHandle.standardError.write(Data("zrc-relay: configuration error: \(error)\n".utf8))
            }
            throw ExitCode(2)
        }
    }
}

/// `zrc-relay config check`: validate and print the effective configuration.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Configuration tools.",
        subcommands: [Check.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Validate the configuration and print the effective values (secrets redacted); exit 0 if valid, 2 if not."
        )

        @OptionGroup var options: ConfigOptions

        func run() throws {
            let (loader, settings) = try options.load(command: Self.self)
            do {
                _ = try StartChecks.run(settings)
            } catch {
                FileHandle.standardError.write(Data("zrc-relay: configuration error: \(error)\n".utf8))
                throw ExitCode(2)
            }
            if !loader.ignoredEnvironmentNames.isEmpty {
                print("# ignored environment variables (not settings): \(loader.ignoredEnvironmentNames.joined(separator: ", "))")
            }
            print(loader.effectiveLines().joined(separator: "\n"))
        }
    }
}
