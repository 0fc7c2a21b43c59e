import Foundation

/// A throwaway self-signed certificate made with GnuTLS's certtool.
public enum TestCertificate {
    public static let paths: (cert: String, key: String) = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zrc-quic-tests-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let key = dir + "/key.pem", cert = dir + "/cert.pem", template = dir + "/cert.cfg"
        try? "cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nsigning_key\nexpiration_days = 2\n"
            .write(toFile: template, atomically: true, encoding: .utf8)
        run(["certtool", "--generate-privkey", "--key-type=ecdsa", "--curve=secp256r1", "--outfile", key])
        run(["certtool", "--generate-self-signed", "--load-privkey", key, "--template", template, "--outfile", cert])
        return (cert, key)
    }()

    private static func run(_ arguments: [String]) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
        process.waitUntilExit()
    }
}

