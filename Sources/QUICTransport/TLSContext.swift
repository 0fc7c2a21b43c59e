#if canImport(Glibc)
import Glibc
#endif
internal import CNGTCP2

/// GnuTLS credentials shared by all connections of an endpoint, and the per-connection session
/// set-up for QUIC (TLS 1.3 only, ALPN mandatory).
final class TLSContext {
    /// TLS 1.3 only, AES-GCM first (≈ 9× cheaper than ChaCha20 here), no middlebox compat mode
    /// (QUIC forbids it).
    static let priority =
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:%DISABLE_TLS13_COMPAT_MODE"

    let isServer: Bool
    private let credentials: gnutls_certificate_credentials_t
    /// `priority` parsed once: every session refers to this cache (GnuTLS counts references).
    /// Parsing it per session (`gnutls_priority_set_direct`) left 8.3 KB per connection.
    private let priorityCache: gnutls_priority_t
    private let alpn: [UInt8]
    private let verifyPeer: Bool

    init(configuration: QUICConfiguration, isServer: Bool) throws(QUICTransportError) {
        self.isServer = isServer
        self.alpn = Array(configuration.alpn.utf8)
        var priorityCache: gnutls_priority_t?
        let parsed = gnutls_priority_init(&priorityCache, Self.priority, nil)
        guard parsed == 0, let priorityCache else { throw .tls("gnutls_priority_init", parsed) }
        var credentials: gnutls_certificate_credentials_t?
        let status = gnutls_certificate_allocate_credentials(&credentials)
        guard status == 0, let credentials else {
            gnutls_priority_deinit(priorityCache)
            throw .tls("gnutls_certificate_allocate_credentials", status)
        }
        self.priorityCache = priorityCache
        self.credentials = credentials
        if isServer {
            guard let cert = configuration.certificatePath, let key = configuration.privateKeyPath else {
                gnutls_certificate_free_credentials(credentials)
                gnutls_priority_deinit(priorityCache)
                throw .invalid("a server needs a certificate and a private key")
            }
            let loaded = gnutls_certificate_set_x509_key_file(credentials, cert, key, GNUTLS_X509_FMT_PEM)
            guard loaded == 0 else {
                gnutls_certificate_free_credentials(credentials)
                gnutls_priority_deinit(priorityCache)
                let message = String(cString: gnutls_strerror(loaded))
                throw QUICTransportError(code: .tls, reason: "cannot load certificate \(cert) / key \(key): \(message)")
            }
            verifyPeer = false
        } else if let ca = configuration.trustedCAPath {
            let loaded = gnutls_certificate_set_x509_trust_file(credentials, ca, GNUTLS_X509_FMT_PEM)
            guard loaded > 0 else {
                gnutls_certificate_free_credentials(credentials)
                gnutls_priority_deinit(priorityCache)
                throw QUICTransportError(code: .tls, reason: "no trusted certificate loaded from \(ca)")
            }
            verifyPeer = true
        } else {
            verifyPeer = false
        }
    }

    deinit {
        gnutls_certificate_free_credentials(credentials)
        gnutls_priority_deinit(priorityCache)
    }

    /// A new GnuTLS session configured for QUIC; `connRef` must stay at its address for the
    /// session's lifetime (GnuTLS keeps the pointer).
    func makeSession(connRef: UnsafeMutablePointer<ngtcp2_crypto_conn_ref>, serverName: String?) -> gnutls_session_t? {
        var session: gnutls_session_t?
        let flags = UInt32(isServer ? GNUTLS_SERVER : GNUTLS_CLIENT)
            | GNUTLS_ENABLE_EARLY_DATA.rawValue | GNUTLS_NO_END_OF_EARLY_DATA.rawValue
        guard gnutls_init(&session, flags) == 0, let session else { return nil }
        var ok = gnutls_priority_set(session, priorityCache) == 0
        if ok {
            ok = (isServer
                ? ngtcp2_crypto_gnutls_configure_server_session(session)
                : ngtcp2_crypto_gnutls_configure_client_session(session)) == 0
        }
        if ok {
            gnutls_session_set_ptr(session, connRef)
            ok = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, UnsafeMutableRawPointer(credentials)) == 0
        }
        if ok {
            ok = alpn.withUnsafeBufferPointer { buffer -> Bool in
                var datum = gnutls_datum_t(data: UnsafeMutablePointer(mutating: buffer.baseAddress), size: UInt32(buffer.count))
                let flags = isServer
                    ? UInt32(GNUTLS_ALPN_MANDATORY.rawValue | GNUTLS_ALPN_SERVER_PRECEDENCE.rawValue)
                    : UInt32(GNUTLS_ALPN_MANDATORY.rawValue)
                return gnutls_alpn_set_protocols(session, &datum, 1, flags) == 0
            }
        }
        if ok, !isServer, let serverName, !serverName.isEmpty, TransportAddress(ipAddress: serverName, port: 0) == nil {
            ok = gnutls_server_name_set(session, GNUTLS_NAME_DNS, serverName, serverName.utf8.count) == 0
            if ok && verifyPeer {
                gnutls_session_set_verify_cert(session, serverName, 0)
            }
        } else if ok, !isServer, verifyPeer {
            gnutls_session_set_verify_cert(session, nil, 0)
        }
        guard ok else {
            gnutls_deinit(session)
            return nil
        }
        return session
    }
}
