import Crypto
import EgressProxy
import Foundation
import SwiftASN1
import X509

/// `zrc-relay pki` (DESIGN §12): a private CA and the certificates it signs, ECDSA P-256.
/// Key files are written with mode 0600; nothing is overwritten without `force`.
public enum PrivateCA {
    /// A `pki` failure, with the message for the operator.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// What `pki issue` makes.
    public enum Role: Sendable {
        /// `--server`: serverAuth, with DNS names and IP addresses.
        case server(dns: [String], ips: [String])
        /// `--client`: clientAuth; the name is the agent's identity.
        case client
    }

    /// Writes `ca.crt` and `ca.key` in `directory`.
    public static func initialize(directory: String, name: String, days: Int = 3650, force: Bool) throws {
        let certificatePath = directory + "/ca.crt", keyPath = directory + "/ca.key"
        try refuseOverwrite([certificatePath, keyPath], force: force)
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName(name) }
        let now = Date()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Double(days) * 86_400),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            },
            issuerPrivateKey: .init(key))
        try createDirectory(directory)
        try write(key.pemRepresentation + "\n", to: keyPath, mode: 0o600)
        try write(try certificate.serializeAsPEM().pemString + "\n", to: certificatePath, mode: 0o644)
    }

    /// Writes `NAME.crt` and `NAME.key` in `directory`, signed by the CA there.
    public static func issue(directory: String, name: String, role: Role, days: Int = 365, force: Bool) throws {
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }), name != "ca" else {
            throw Failure(description: "--name must be letters, digits, - _ . (and not \"ca\")")
        }
        let certificatePath = directory + "/\(name).crt", keyPath = directory + "/\(name).key"
        try refuseOverwrite([certificatePath, keyPath], force: force)
        let caCertificate: Certificate
        let caKey: P256.Signing.PrivateKey
        do {
            caCertificate = try Certificate(pemEncoded: String(contentsOfFile: directory + "/ca.crt", encoding: .utf8))
        } catch {
            throw Failure(description: "\(directory)/ca.crt: cannot read the CA certificate (run pki init first): \(error)")
        }
        do {
            caKey = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: directory + "/ca.key", encoding: .utf8))
        } catch {
            throw Failure(description: "\(directory)/ca.key: cannot read the CA key: \(error)")
        }
        var names: [GeneralName] = []
        let usage: ExtendedKeyUsage.Usage
        switch role {
        case .server(let dns, let ips):
            usage = .serverAuth
            for host in dns { names.append(.dnsName(host)) }
            for ip in ips {
                guard let address = ProxyIPAddress(ip) else { throw Failure(description: "--ip: \"\(ip)\" is not an IP address") }
                names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(address.bytes))))
            }
        case .client:
            usage = .clientAuth
        }
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let now = Date()
        let caKeyIdentifier = try? caCertificate.extensions.subjectKeyIdentifier?.keyIdentifier
        let sans = names
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Double(days) * 86_400),
            issuer: caCertificate.subject, subject: try DistinguishedName { CommonName(name) }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([usage])
                SubjectKeyIdentifier(hash: publicKey)
                if let caKeyIdentifier { AuthorityKeyIdentifier(keyIdentifier: caKeyIdentifier) }
                if !sans.isEmpty { SubjectAlternativeNames(sans) }
            },
            issuerPrivateKey: .init(caKey))
        try createDirectory(directory)
        try write(key.pemRepresentation + "\n", to: keyPath, mode: 0o600)
        try write(try certificate.serializeAsPEM().pemString + "\n", to: certificatePath, mode: 0o644)
    }

    static func refuseOverwrite(_ paths: [String], force: Bool) throws {
        guard !force else { return }
        for path in paths where FileManager.default.fileExists(atPath: path) {
            throw Failure(description: "\(path) exists; use --force to overwrite it")
        }
    }

    static func createDirectory(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw Failure(description: "\(directory): cannot create the directory: \(error)")
        }
    }

    /// Creates the file with its final mode from the start (`O_EXCL`), so a key is never
    /// readable by others, not even for a moment.
    static func write(_ text: String, to path: String, mode: Int) throws {
        if FileManager.default.fileExists(atPath: path) { try? FileManager.default.removeItem(atPath: path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode_t(mode))
        guard fd >= 0 else { throw Failure(description: "\(path): cannot create the file (errno \(errno))") }
        defer { close(fd) }
        _ = fchmod(fd, mode_t(mode))
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { systemWrite(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "\(path): cannot write the file (errno \(errno))") }
            written += n
        }
    }
}

#if canImport(Glibc)
import Glibc
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer?, _ count: Int) -> Int { Glibc.write(fd, pointer, count) }
#elseif canImport(Darwin)
import Darwin
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer?, _ count: Int) -> Int { Darwin.write(fd, pointer, count) }
#endif
