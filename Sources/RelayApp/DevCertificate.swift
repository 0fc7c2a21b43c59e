import Crypto
import Foundation
import SwiftASN1
import X509

/// Makes the self-signed certificate `serve` uses when neither the certificate nor the key
/// exists at their default paths: ECDSA P-256, valid 1 year, SAN localhost/127.0.0.1/::1.
/// The key file is written with mode 0600.
enum DevCertificate {
    static func generate(certificatePath: String, keyPath: String) throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            CommonName("zrc-relay development certificate")
            OrganizationName("zrc-relay")
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(365 * 24 * 3600),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([
                    .dnsName("localhost"),
                    .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                    .ipAddress(ASN1OctetString(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
                ])
            },
            issuerPrivateKey: .init(key)
        )
        let fm = FileManager.default
        let directory = (certificatePath as NSString).deletingLastPathComponent
        if !directory.isEmpty { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let keyDirectory = (keyPath as NSString).deletingLastPathComponent
        if !keyDirectory.isEmpty { try fm.createDirectory(atPath: keyDirectory, withIntermediateDirectories: true) }
        guard fm.createFile(atPath: keyPath, contents: Data(key.pemRepresentation.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw RelayAppError("cannot write \(keyPath)")
        }
        let pem = try certificate.serializeAsPEM().pemString
        guard fm.createFile(atPath: certificatePath, contents: Data((pem + "\n").utf8), attributes: [.posixPermissions: 0o644]) else {
            throw RelayAppError("cannot write \(certificatePath)")
        }
    }
}
