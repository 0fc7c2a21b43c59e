import ArgumentParser
import Foundation
import RelayConfig

/// `--config FILE` plus `--section.key VALUE` settings, shared by `serve` and `config check`.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "TOML configuration file.")
    var config: String?

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Settings as --section.key VALUE (see config/zrc-relay.toml).", valueName: "setting"))
    var settings: [String] = []

    /// Reads every layer (again, on reload); throws the first problem.
    func read() throws(ConfigError) -> (RelaySettingsLoader, RelaySettings) {
        var text: String?
        if let config {
            text = try ConfigFileReader.read(config, key: "--config")
        }
        let loader = try RelaySettingsLoader(fileText: text, fileName: config ?? "config",
                                             environment: ProcessInfo.processInfo.environment, flags: settings)
        return (loader, try loader.settings())
    }

    /// Reads every layer; on a problem prints one line naming the key and exits 2.
    func load() throws -> (RelaySettingsLoader, RelaySettings) {
        do {
            return try read()
        } catch {
            FileHandle.standardError.write(Data("zrc-relay: configuration error: \(error)\n".utf8))
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
            let (loader, _) = try options.load()
            print(loader.effectiveLines().joined(separator: "\n"))
        }
    }
}
