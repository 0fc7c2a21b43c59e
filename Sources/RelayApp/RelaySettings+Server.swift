import Foundation
import QUICTransport
import RelayConfig
import RelayCore
import RelayEngine

extension RelaySettings {
    /// The QUIC endpoint's configuration.
    func quicConfiguration() -> QUICConfiguration {
        var quic = QUICConfiguration()
        quic.certificatePath = server.certificatePath
        quic.privateKeyPath = server.keyPath
        quic.maxIdleTimeout = self.quic.maxIdleTimeout
        quic.keepAliveInterval = limits.keepaliveInterval
        switch self.quic.retry {
        case .auto: quic.retryPolicy = .auto
        case .always: quic.retryPolicy = .always
        case .never: quic.retryPolicy = .never
        }
        // Per second, rounded up so a positive rate never becomes "no limit"; 0 = no limit.
        let windowSeconds = max(1, security.acceptRate.window.components.seconds)
        let count = Int64(security.acceptRate.count)
        quic.acceptRate = count == 0 ? 0 : Int(clamping: max(1, (count + windowSeconds - 1) / windowSeconds))
        return quic
    }

    /// The relay's rules; reads `auth.trusted_keys_file` and `security.blocklist_file`.
    func relayConfiguration() throws(ConfigError) -> RelayServerConfiguration {
        var keys = Set<SignerKey>()
        for text in auth.trustedKeys {
            guard let key = SignerKey(base64url: text) else {
                throw ConfigError(key: "auth.trusted_keys", problem: "\(ConfigError.quote(text)) is not a base64url Ed25519 public key (32 bytes)")
            }
            keys.insert(key)
        }
        if let file = auth.trustedKeysFile {
            for (number, line) in try Self.lines(of: file, key: "auth.trusted_keys_file") {
                guard let key = SignerKey(base64url: line) else {
                    throw ConfigError(key: "auth.trusted_keys_file", problem: "\(file):\(number): not a base64url Ed25519 public key")
                }
                keys.insert(key)
            }
        }
        var blocklist: CIDRSet
        var allowlist: CIDRSet
        do {
            blocklist = try CIDRSet(parsing: security.blocklist)
        } catch { throw ConfigError(key: "security.blocklist", problem: error.description) }
        do {
            allowlist = try CIDRSet(parsing: security.allowlist)
        } catch { throw ConfigError(key: "security.allowlist", problem: error.description) }
        if let file = security.blocklistFile {
            for (number, line) in try Self.lines(of: file, key: "security.blocklist_file") {
                do { try blocklist.insert(line) } catch {
                    throw ConfigError(key: "security.blocklist_file", problem: "\(file):\(number): \(error.description)")
                }
            }
        }
        let tiers: [Tier: RelayCore.TierLimits] = [
            .free: RelayCore.TierLimits(bandwidthBitsPerSecond: freeTier.bandwidthBitsPerSecond, quotaBytes: freeTier.quotaBytes),
            .paid: RelayCore.TierLimits(bandwidthBitsPerSecond: paidTier.bandwidthBitsPerSecond, quotaBytes: paidTier.quotaBytes),
            .unlimited: RelayCore.TierLimits(bandwidthBitsPerSecond: unlimitedTier.bandwidthBitsPerSecond, quotaBytes: unlimitedTier.quotaBytes),
        ]
        var configuration = RelayServerConfiguration(
            allocations: .init(
                maxAllocations: limits.maxAllocations, maxAllocationsPerKey: limits.maxAllocationsPerKey, tiers: tiers,
                globalBandwidthBitsPerSecond: limits.globalBandwidthBitsPerSecond, allocationTimeout: limits.allocationTimeout,
                pairingTimeout: limits.pairingTimeout, idleTimeout: limits.idleTimeout),
            tokens: .init(trustedKeys: keys, audience: auth.audience, clockSkewSeconds: UInt64(auth.clockSkew.components.seconds),
                          maxTokenLifetimeSeconds: UInt64(auth.maxTokenLifetime.components.seconds)),
            relayPort: server.listenPort)
        configuration.publicAddress = server.publicAddress
        configuration.allocationRatePerIP = (security.allocationRatePerIP.count, security.allocationRatePerIP.window)
        configuration.connectionRatePerIP = (security.connectionRatePerIP.count, security.connectionRatePerIP.window)
        configuration.allowlist = allowlist
        configuration.blocklist = blocklist
        return configuration
    }

    /// Non-empty, non-comment lines of a file with their line numbers.
    static func lines(of path: String, key: String) throws(ConfigError) -> [(Int, String)] {
        let text = try ConfigFileReader.read(path, key: key)
        var out: [(Int, String)] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if !trimmed.isEmpty { out.append((index + 1, trimmed)) }
        }
        return out
    }
}
