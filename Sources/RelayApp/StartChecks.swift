import Foundation
import RelayConfig
import RelayCore
import RelayEngine
import RedisProtocol
import QUICTransport

/// Every check `serve` makes before binding a socket, shared with `config check` (DESIGN §2
/// v3: what passes `config check` starts; what fails it names the key).
public enum StartChecks {
    /// The relay's rules (trusted keys, CIDRs, key and block-list files) and the certificate.
    public static func run(_ settings: RelaySettings) throws(ConfigError) -> RelayServerConfiguration {
        var configuration = try settings.relayConfiguration()
        try checkCertificate(settings)
        _ = try adminToken(settings)
        _ = try revocationStore(settings)
        _ = try redisURL(settings)
        if let developer = developmentSigner(settings) { configuration.tokens.trustedKeys.insert(developer) }
        return configuration
    }

    /// `redis.url` parsed, `nil` when unset (the embedded in-memory state). The error never
    /// repeats the URL (it may hold a password).
    public static func redisURL(_ settings: RelaySettings) throws(ConfigError) -> RedisURL? {
        guard let text = settings.redis.url, !text.isEmpty else { return nil }
        do {
            return try RedisURL(parsing: text)
        } catch {
            throw ConfigError(key: "redis.url", problem: error.description)
        }
    }

    /// The development device key (`certs/dev-device.key`, written with the development
    /// certificate by the first `make run`), trusted only while the relay runs on the default
    /// certificate paths with no trusted keys configured.
    public static func developmentSigner(_ settings: RelaySettings) -> SignerKey? {
        guard settings.auth.trustedKeys.isEmpty, settings.auth.trustedKeysFile == nil,
              settings.server.certificatePath == Defaults.byName["server.quic_cert_path"]?.defaultValue,
              settings.server.keyPath == Defaults.byName["server.quic_key_path"]?.defaultValue
        else { return nil }
        return DevDeviceKey.signer(at: DevDeviceKey.path(besideCertificate: settings.server.certificatePath))
    }

    /// Whether `serve` will generate the development certificate (both default paths, both absent).
    public static func willGenerateDevCertificate(_ settings: RelaySettings) -> Bool {
        let certPath = settings.server.certificatePath
        let keyPath = settings.server.keyPath
        let fm = FileManager.default
        return certPath == Defaults.byName["server.quic_cert_path"]?.defaultValue
            && keyPath == Defaults.byName["server.quic_key_path"]?.defaultValue
            && !fm.fileExists(atPath: certPath) && !fm.fileExists(atPath: keyPath)
    }

    /// The certificate and key can be read, parse as PEM, and belong together — checked with
    /// GnuTLS, the library that serves them (a key written by certtool, with text before the
    /// PEM block and a SEC1 key with a leading zero byte, is fine).
    static func checkCertificate(_ settings: RelaySettings) throws(ConfigError) {
        guard !willGenerateDevCertificate(settings) else { return }
        let certText = try ConfigFileReader.read(settings.server.certificatePath, key: "server.quic_cert_path")
        let keyText = try ConfigFileReader.read(settings.server.keyPath, key: "server.quic_key_path")
        switch TLSCredentialCheck.problem(certificatePEM: certText, keyPEM: keyText) {
        case nil:
            return
        case .certificate(let reason):
            throw ConfigError(key: "server.quic_cert_path", problem: "no PEM certificate in \(settings.server.certificatePath): \(reason)")
        case .key(let reason):
            throw ConfigError(key: "server.quic_key_path", problem: "no PEM private key in \(settings.server.keyPath): \(reason)")
        case .pair(let reason):
            throw ConfigError(key: "server.quic_key_path", problem: "does not match the certificate in server.quic_cert_path (\(reason))")
        }
    }

    /// The admin token when the admin API is on (DESIGN §7 v3): `admin.token` or the content
    /// of `admin.token_file`, at least 32 characters; `nil` while the admin API is off.
    public static func adminToken(_ settings: RelaySettings) throws(ConfigError) -> String? {
        guard settings.admin.enabled else { return nil }
        try checkUnixSocketPath(settings)
        // The socket alone needs no token (its callers are admitted by uid).
        if settings.admin.listen == nil, settings.admin.token == nil, settings.admin.tokenFile == nil { return nil }
        let token: String
        let key: String
        switch (settings.admin.token, settings.admin.tokenFile) {
        case (let value?, nil):
            token = value
            key = "admin.token"
        case (nil, let file?):
            token = try ConfigFileReader.read(file, key: "admin.token_file").trimmingCharacters(in: .whitespacesAndNewlines)
            key = "admin.token_file"
        case (nil, nil):
            throw ConfigError(key: "admin.token", problem: "admin.enabled = true needs admin.token or admin.token_file")
        case (_?, _?):
            throw ConfigError(key: "admin.token", problem: "set admin.token or admin.token_file, not both")
        }
        guard token.count >= 32 else { throw ConfigError(key: key, problem: "the admin token must be at least 32 characters") }
        guard !token.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw ConfigError(key: key, problem: "the admin token must be one word (no spaces or line breaks)")
        }
        return token
    }

    /// The revocations of `auth.revocations_file` (a missing file is empty; a bad line names it).
    static func revocationStore(_ settings: RelaySettings) throws(ConfigError) -> RevocationStore {
        do {
            return try RevocationStore(path: settings.auth.revocationsFile)
        } catch {
            throw ConfigError(key: "auth.revocations_file", problem: "\(settings.auth.revocationsFile ?? ""):\(error.line): \(error.problem)")
        }
    }

    /// `admin.unix_socket`: its directory exists, and what is at the path, if anything, is a
    /// socket (a stale one is replaced at start; any other file is never touched).
    static func checkUnixSocketPath(_ settings: RelaySettings) throws(ConfigError) {
        guard let path = settings.admin.unixSocket else { return }
        guard path.utf8.count < 100 else { throw ConfigError(key: "admin.unix_socket", problem: "the path is too long for a Unix socket (< 100 bytes)") }
        let directory = (path as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ConfigError(key: "admin.unix_socket", problem: "directory \(directory) does not exist")
        }
        var info = stat()
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFSOCK {
            throw ConfigError(key: "admin.unix_socket", problem: "\(path) exists and is not a socket; refusing to replace it")
        }
    }
}
