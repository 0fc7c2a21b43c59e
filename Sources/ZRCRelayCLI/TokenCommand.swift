import ArgumentParser
import Crypto
import Foundation
import RelayConfig
import RelayCore

/// `zrc-relay token keygen|mint|inspect`.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Device keys and relay tokens (RelayTokenV1).",
        subcommands: [Keygen.self, Mint.self, Inspect.self]
    )

    /// The key file: the 32-byte Ed25519 private key (seed) as base64url on one line, mode 0600.
    static func readKey(_ path: String) throws -> Curve25519.Signing.PrivateKey {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read key file \(path)")
        }
        guard let raw = Base64URL.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else { throw ValidationError("\(path) does not hold a base64url Ed25519 private key (32 bytes)") }
        return key
    }

    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new Ed25519 device key (file mode 0600); print its public key (base64url).")

        @Option(help: "Where to write the private key.")
        var out: String

        @Flag(help: "Replace an existing file.")
        var force = false

        func run() throws {
            if FileManager.default.fileExists(atPath: out), !force {
                throw ValidationError("\(out) exists (use --force to replace it)")
            }
            let key = Curve25519.Signing.PrivateKey()
            let text = Base64URL.encode(key.rawRepresentation) + "\n"
            guard FileManager.default.createFile(atPath: out, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw ValidationError("cannot write \(out)")
            }
            chmod(out, 0o600)
            print(Base64URL.encode(key.publicKey.rawRepresentation))
        }
    }

    struct Mint: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign a relay token; print it (base64url).")

        @Option(help: "Device private key file (from keygen).")
        var key: String

        @Option(help: "The two peer ids allowed to bind, as HEX,HEX (32 hex digits each).")
        var peers: String

        @Option(help: "Allocation id (32 hex digits); random when omitted.")
        var allocation: String?

        @Option(help: "Lifetime: seconds or 30s, 15m, 1h, 24h.")
        var ttl: String = "1h"

        @Option(help: "free, paid or unlimited.")
        var tier: String = "free"

        @Option(help: "Fleet audience name (auth.audience of the relays).")
        var audience: String?

        @Option(help: "Bandwidth cap, e.g. 2Mbps (0 = the tier's).")
        var bandwidth: String = "0"

        @Option(help: "Quota, e.g. 100MB (0 = the tier's).")
        var quota: String = "0"

        @Option(help: "issued_at as Unix seconds (default: now).")
        var issuedAt: UInt64?

        func run() throws {
            let signingKey = try TokenCommand.readKey(key)
            let parts = peers.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let a = PeerID(hex: parts[0]), let b = PeerID(hex: parts[1]) else {
                throw ValidationError("--peers must be two 32-hex-digit ids separated by a comma")
            }
            let id: AllocationID
            if let allocation {
                guard let parsed = AllocationID(hex: allocation) else { throw ValidationError("--allocation must be 32 hex digits") }
                id = parsed
            } else {
                id = AllocationID(high: UInt64.random(in: 0...UInt64.max), low: UInt64.random(in: 0...UInt64.max))
            }
            guard let lifetime = ConfigUnits.duration(ttl), lifetime > .zero else { throw ValidationError("--ttl: '\(ttl)' is not a duration") }
            guard let tierValue = Tier(name: tier) else { throw ValidationError("--tier must be free, paid or unlimited") }
            guard let rate = ConfigUnits.bitRate(bandwidth) else { throw ValidationError("--bandwidth: '\(bandwidth)' is not a bit rate") }
            guard let size = ConfigUnits.size(quota) else { throw ValidationError("--quota: '\(quota)' is not a size") }
            let issued = issuedAt ?? UInt64(Date().timeIntervalSince1970)
            let (expires, overflow) = issued.addingReportingOverflow(UInt64(lifetime.components.seconds))
            guard !overflow else { throw ValidationError("--ttl is too long") }
            let token = try RelayTokenV1.mint(
                signingKey: signingKey, audience: audience, allocationID: id, peerA: a, peerB: b,
                issuedAt: issued, expiresAt: expires, tier: tierValue, bandwidthBitsPerSecond: rate, quotaBytes: size)
            print(token.text)
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode a token, verify it against trusted keys, print its fields.",
            discussion: "Exit status: 0 valid (or decoded, without --trusted), 1 refused.")

        @Argument(help: "The token (base64url).")
        var token: String

        @Option(parsing: .upToNextOption, help: "Trusted public keys (base64url).")
        var trusted: [String] = []

        @Option(help: "Audience the relay expects.")
        var audience: String?

        func run() throws {
            let parsed: RelayTokenV1
            do {
                parsed = try RelayTokenV1(text: token)
            } catch {
                print("result: invalid_token (\(error.reason))")
                throw ExitCode(1)
            }
            print("version: 1")
            print("signer: \(parsed.signer)")
            print("audience: \(parsed.audience.allSatisfy { $0 == 0 } ? "(any)" : Hex.encode(parsed.audience))")
            print("allocation_id: \(parsed.allocationID)")
            print("peer_a: \(parsed.peerA)")
            print("peer_b: \(parsed.peerB)")
            print("issued_at: \(parsed.issuedAt)")
            print("expires_at: \(parsed.expiresAt)")
            print("tier: \(parsed.tier)")
            print("bandwidth_bps: \(parsed.bandwidthBitsPerSecond)")
            print("quota_bytes: \(parsed.quotaBytes)")
            print("signature: \(parsed.hasValidSignature ? "valid" : "INVALID")")
            guard !trusted.isEmpty else {
                if !parsed.hasValidSignature { throw ExitCode(1) }
                return
            }
            var keys = Set<SignerKey>()
            for k in trusted {
                guard let key = SignerKey(base64url: k) else { throw ValidationError("--trusted: '\(k)' is not a base64url public key") }
                keys.insert(key)
            }
            var verifier = TokenVerifier(configuration: .init(trustedKeys: keys, audience: audience))
            switch verifier.verify(parsed.bytes, nowUnix: UInt64(Date().timeIntervalSince1970)) {
            case .valid: print("result: valid")
            case .rejected(let code):
                print("result: \(code.name)")
                throw ExitCode(1)
            }
        }
    }
}
