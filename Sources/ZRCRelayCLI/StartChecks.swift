import Foundation
import RelayConfig
import RelayCore
import RelayServer
import X509

/// Every check `serve` makes before binding a socket, shared with `config check` (DESIGN §2
/// v3: what passes `config check` starts; what fails it names the key).
enum StartChecks {
    /// The relay's rules (trusted keys, CIDRs, key and block-list files) and the certificate.
    static func run(_ settings: RelaySettings) throws(ConfigError) -> RelayServerConfiguration {
        var configuration = try settings.relayConfiguration()
        try checkCertificate(settings)
        if let developer = developmentSigner(settings) { configuration.tokens.trustedKeys.insert(developer) }
        return configuration
    }

    /// The development device key (`certs/dev-device.key`, written with the development
    /// certificate by the first `make run`), trusted only while the relay runs on the default
    /// certificate paths with no trusted keys configured.
    static func developmentSigner(_ settings: RelaySettings) -> SignerKey? {
        guard settings.auth.trustedKeys.isEmpty, settings.auth.trustedKeysFile == nil,
              settings.server.certificatePath == Defaults.byName["server.quic_cert_path"]?.defaultValue,
              settings.server.keyPath == Defaults.byName["server.quic_key_path"]?.defaultValue
        else { return nil }
        return DevDeviceKey.signer(at: DevDeviceKey.path(besideCertificate: settings.server.certificatePath))
    }

    /// Whether `serve` will generate the development certificate (both default paths, both absent).
    static func willGenerateDevCertificate(_ settings: RelaySettings) -> Bool {
        let certPath = settings.server.certificatePath
        let keyPath = settings.server.keyPath
        let fm = FileManager.default
        return certPath == Defaults.byName["server.quic_cert_path"]?.defaultValue
            && keyPath == Defaults.byName["server.quic_key_path"]?.defaultValue
            && !fm.fileExists(atPath: certPath) && !fm.fileExists(atPath: keyPath)
    }

    /// The certificate and key can be read, parse as PEM, and belong together.
    static func checkCertificate(_ settings: RelaySettings) throws(ConfigError) {
        guard !willGenerateDevCertificate(settings) else { return }
        let certText = try ConfigFileReader.read(settings.server.certificatePath, key: "server.quic_cert_path")
        let keyText = try ConfigFileReader.read(settings.server.keyPath, key: "server.quic_key_path")
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: certText)
        } catch {
            throw ConfigError(key: "server.quic_cert_path", problem: "not a PEM certificate (\(settings.server.certificatePath))")
        }
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: keyText)
        } catch {
            throw ConfigError(key: "server.quic_key_path", problem: "not a PEM private key this relay can use (\(settings.server.keyPath))")
        }
        guard key.publicKey == certificate.publicKey else {
            throw ConfigError(key: "server.quic_key_path", problem: "does not match the certificate in server.quic_cert_path")
        }
    }
}
