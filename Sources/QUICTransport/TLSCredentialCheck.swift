internal import CNGTCP2

/// Checks a certificate and private key the way a server endpoint will load them (GnuTLS,
/// PEM): each on its own, then as a pair. Used before anything binds (`config check`, `serve`).
public enum TLSCredentialCheck {
    /// What is wrong, with GnuTLS's words.
    public enum Problem: Error, Sendable, Equatable {
        /// The certificate file holds no certificate GnuTLS can read.
        case certificate(String)
        /// The key file holds no private key GnuTLS can read.
        case key(String)
        /// Both read, but they do not belong together (or GnuTLS refuses the pair).
        case pair(String)
    }

    /// `nil` when the pair would load; otherwise the first problem.
    public static func problem(certificatePEM: String, keyPEM: String) -> Problem? {
        var certificateBytes = Array(certificatePEM.utf8)
        var keyBytes = Array(keyPEM.utf8)
        return certificateBytes.withUnsafeMutableBufferPointer { certificateBuffer in
            keyBytes.withUnsafeMutableBufferPointer { keyBuffer -> Problem? in
                var certificateDatum = gnutls_datum_t(data: certificateBuffer.baseAddress, size: UInt32(certificateBuffer.count))
                var keyDatum = gnutls_datum_t(data: keyBuffer.baseAddress, size: UInt32(keyBuffer.count))
                var certificate: gnutls_x509_crt_t?
                guard gnutls_x509_crt_init(&certificate) == 0, let certificate else { return .certificate("out of memory") }
                defer { gnutls_x509_crt_deinit(certificate) }
                // The first certificate of the file (the leaf of a chain).
                let imported = gnutls_x509_crt_import(certificate, &certificateDatum, GNUTLS_X509_FMT_PEM)
                if imported < 0 { return .certificate(message(imported)) }
                var key: gnutls_x509_privkey_t?
                guard gnutls_x509_privkey_init(&key) == 0, let key else { return .key("out of memory") }
                defer { gnutls_x509_privkey_deinit(key) }
                let keyImported = gnutls_x509_privkey_import2(key, &keyDatum, GNUTLS_X509_FMT_PEM, nil, 0)
                if keyImported < 0 { return .key(message(keyImported)) }
                var credentials: gnutls_certificate_credentials_t?
                guard gnutls_certificate_allocate_credentials(&credentials) == 0, let credentials else { return .pair("out of memory") }
                defer { gnutls_certificate_free_credentials(credentials) }
                let paired = gnutls_certificate_set_x509_key_mem(credentials, &certificateDatum, &keyDatum, GNUTLS_X509_FMT_PEM)
                return paired < 0 ? .pair(message(paired)) : nil
            }
        }
    }

    private static func message(_ code: Int32) -> String {
        guard let text = gnutls_strerror(code) else { return "GnuTLS error \(code)" }
        return String(cString: text)
    }
}
