import Crypto
import Foundation
import RelayCore

/// The development device key of `make run` (DESIGN: a newcomer sees datagrams flow within a
/// minute). Written next to the generated development certificate the first time, and trusted
/// only by a relay that runs on that development certificate with no trusted keys configured.
enum DevDeviceKey {
    /// `certs/dev-device.key` beside `certs/relay.crt`.
    static func path(besideCertificate certificatePath: String) -> String {
        let directory = (certificatePath as NSString).deletingLastPathComponent
        return (directory.isEmpty ? "" : directory + "/") + "dev-device.key"
    }

    /// Writes a new key file (mode 0600) unless one exists.
    static func create(at path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else { return }
        let key = Curve25519.Signing.PrivateKey()
        let text = Base64URL.encode(key.rawRepresentation) + "\n"
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw RelayAppError("cannot write the development device key \(path)")
        }
    }

    /// The public key of the key file, if there is a readable one.
    static func signer(at path: String) -> SignerKey? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let raw = Base64URL.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else { return nil }
        return SignerKey(bytes: key.publicKey.rawRepresentation)
    }
}
