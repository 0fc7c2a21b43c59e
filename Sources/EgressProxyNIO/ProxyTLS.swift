import EgressProxy
import NIOCore
import NIOSSL
import X509

/// TLS set-up of both proxy ends (DESIGN §12): TLS 1.3 only; the server requires a client
/// certificate signed by the CA; the agent verifies the server's certificate against the
/// same CA.
public enum ProxyTLS {
    /// A TLS file that could not be read, naming the file.
    public struct FileError: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// The server's context: its certificate and key; client certificates required and
    /// verified against `caPath` (no host name check: the agent's identity is its CN).
    public static func serverContext(caPath: String, certificatePath: String, keyPath: String) throws -> NIOSSLContext {
        let chain = try certificates(certificatePath)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(try privateKey(keyPath)))
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(try certificates(caPath))
        return try NIOSSLContext(configuration: configuration)
    }

    /// The agent's context: its client certificate and key; the server verified against
    /// `caPath`, host name included.
    public static func clientContext(caPath: String, certificatePath: String, keyPath: String) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .certificates(try certificates(caPath))
        configuration.certificateChain = try certificates(certificatePath).map { .certificate($0) }
        configuration.privateKey = .privateKey(try privateKey(keyPath))
        return try NIOSSLContext(configuration: configuration)
    }

    static func certificates(_ path: String) throws -> [NIOSSLCertificate] {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw FileError(path: path, reason: "cannot read a PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw FileError(path: path, reason: "no certificate in the file") }
        return chain
    }

    static func privateKey(_ path: String) throws -> NIOSSLPrivateKey {
        do {
            return try NIOSSLPrivateKey(file: path, format: .pem)
        } catch {
            throw FileError(path: path, reason: "cannot read a PEM private key (\(error))")
        }
    }

    /// The common name of a peer certificate, or `"?"` when it has none.
    public static func commonName(of certificate: NIOSSLCertificate) -> String {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return "?" }
        for rdn in parsed.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                let text = attribute.value.description
                // Log-safe: printable ASCII only, bounded.
                return String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7f }.prefix(128).map(Character.init))
            }
        }
        return "?"
    }

    /// Whether an error from the TLS layer means the peer refused us or we refused the peer
    /// (certificate problems, host name mismatch, protocol mismatch), as opposed to a lost
    /// connection (EOF or a reset during the handshake, which a restarting server causes).
    public static func isHandshakeRefusal(_ error: any Error) -> Bool {
        if let error = error as? NIOSSLExtraError {
            return error == .failedToValidateHostname || error == .serverHostnameImpossibleToMatch
        }
        if let error = error as? NIOSSLError {
            switch error {
            case .handshakeFailed(let underlying):
                let text = "\(underlying)".uppercased()
                return !(text.contains("EOF") || text.contains("SYSCALL") || text.contains("RESET"))
            case .unableToValidateCertificate, .noCertificateToValidate, .cannotMatchULabel, .cannotFindPeerIP:
                return true
            default:
                return false
            }
        }
        if error is BoringSSLError { return describesRefusal("\(error)") }
        return false
    }

    static func describesRefusal(_ text: String) -> Bool {
        let upper = text.uppercased()
        return upper.contains("ALERT") || upper.contains("CERTIFICATE") || upper.contains("VERSION")
    }
}
