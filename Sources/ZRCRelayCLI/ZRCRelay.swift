import ArgumentParser
import Foundation

/// The `zrc-relay` executable: the relay, its configuration check, tokens, a client, the tunnel.
@main
struct ZRCRelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zrc-relay",
        abstract: "A QUIC relay for ZRC remote-control peers.",
        subcommands: [ServeCommand.self, ConfigCommand.self, TokenCommand.self, ClientCommand.self, TunnelCommand.self, ProxyCommand.self, PKICommand.self]
    )

    /// Runs the command; a bad flag or value prints the message and usage and exits 2 (not
    /// ArgumentParser's 64), as DESIGN §2 asks.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }
}
