import ArgumentParser

/// The `zrc-relay` executable: the relay, its configuration check, tokens, a client, the tunnel.
@main
struct ZRCRelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zrc-relay",
        abstract: "A QUIC relay for ZRC remote-control peers.",
        subcommands: [ServeCommand.self, ConfigCommand.self, TokenCommand.self, ClientCommand.self]
    )
}
