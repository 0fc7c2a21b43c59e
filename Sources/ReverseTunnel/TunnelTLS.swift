import NIOSSL

/// TLS contexts for the tunnel (DESIGN §9/§11): TLS 1.3 on the control connection, and the
/// wildcard certificate of the public HTTPS port.
public enum TunnelTLS {
    /// A server context from PEM files (certificate chain, private key).
    /// - Parameters:
    ///   - certificatePath: PEM certificate chain.
    ///   - keyPath: PEM private key.
    ///   - minimumTLS13: Whether to refuse anything below TLS 1.3 (the control connection);
    ///     the public HTTPS port accepts TLS 1.2 too, for ordinary browsers and tools.
    public static func serverContext(certificatePath: String, keyPath: String, minimumTLS13: Bool) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = minimumTLS13 ? .tlsv13 : .tlsv12
        return try NIOSSLContext(configuration: configuration)
    }

    /// A client context for the control connection: TLS 1.3, trusting `caPath` (PEM) or the
    /// system roots, or nothing at all with `insecure` (no verification: tests only).
    public static func clientContext(caPath: String?, insecure: Bool) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        if insecure {
            configuration.certificateVerification = .none
        } else if let caPath {
            configuration.trustRoots = .file(caPath)
        }
        return try NIOSSLContext(configuration: configuration)
    }
}
