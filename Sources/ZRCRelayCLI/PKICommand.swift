import ArgumentParser
import EgressProxyNIO
import Foundation

/// `zrc-relay pki init|issue`: a private CA and certificates for the egress proxy (DESIGN §12).
struct PKICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pki",
        abstract: "A private CA and certificates (ECDSA P-256) for the egress proxy, §12.",
        subcommands: [Init.self, Issue.self]
    )

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a private CA: DIR/ca.crt and DIR/ca.key (mode 0600).")

        @Option(help: "Directory for the CA files (created when missing).")
        var dir: String

        @Option(help: "The CA's common name.")
        var name: String = "zrc-relay private CA"

        @Option(help: "Validity in days.")
        var days: Int = 3650

        @Flag(help: "Overwrite existing files.")
        var force = false

        func validate() throws {
            guard (1...36_500).contains(days) else { throw ValidationError("--days must be 1-36500") }
            guard !name.isEmpty else { throw ValidationError("--name must not be empty") }
        }

        func run() throws {
            do {
                try PrivateCA.initialize(directory: dir, name: name, days: days, force: force)
            } catch {
                FileHandle.standardError.write(Data("zrc-relay pki init: \(error)\n".utf8))
                throw ExitCode(1)
            }
            print("wrote \(dir)/ca.crt and \(dir)/ca.key")
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write DIR/NAME.crt and DIR/NAME.key (mode 0600), signed by the CA in DIR.")

        @Option(help: "Directory holding ca.crt and ca.key; the new files go there too.")
        var dir: String

        @Option(help: "The certificate's name (its common name; for a client, the agent's identity).")
        var name: String

        @Flag(help: "A server certificate (needs --dns).")
        var server = false

        @Flag(help: "A client certificate (for an agent).")
        var client = false

        @Option(help: "A DNS name of the server (repeatable).")
        var dns: [String] = []

        @Option(help: "An IP address of the server (repeatable).")
        var ip: [String] = []

        @Option(help: "Validity in days.")
        var days: Int = 365

        @Flag(help: "Overwrite existing files.")
        var force = false

        func validate() throws {
            guard server != client else { throw ValidationError("give exactly one of --server and --client") }
            if server, dns.isEmpty { throw ValidationError("--server needs at least one --dns") }
            if client, !dns.isEmpty || !ip.isEmpty { throw ValidationError("--dns and --ip are for --server only") }
            guard (1...36_500).contains(days) else { throw ValidationError("--days must be 1-36500") }
        }

        func run() throws {
            do {
                try PrivateCA.issue(directory: dir, name: name, role: server ? .server(dns: dns, ips: ip) : .client, days: days, force: force)
            } catch {
                FileHandle.standardError.write(Data("zrc-relay pki issue: \(error)\n".utf8))
                throw ExitCode(1)
            }
            print("wrote \(dir)/\(name).crt and \(dir)/\(name).key")
        }
    }
}
