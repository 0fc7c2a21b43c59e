#if canImport(Glibc)
import Glibc
#endif

/// Whether a QUIC server answers at an address, without a handshake: one Initial-sized
/// long-header packet with a reserved version (RFC 9000 §15: 0x?a?a?a?a), which every QUIC
/// server answers with Version Negotiation. Used by the client's background QUIC probe and
/// by `client diagnose` (DESIGN §8).
public enum QUICReachability {
    /// The probe packet: 1200 bytes (servers ignore shorter Initials), random connection ids.
    static func probePacket() -> [UInt8] {
        var packet: [UInt8] = [0xC0 | UInt8.random(in: 0...0x0F), 0x1A, 0x2A, 0x3A, 0x4A, 8]
        packet += (0..<8).map { _ in UInt8.random(in: 0...255) }
        packet.append(8)
        packet += (0..<8).map { _ in UInt8.random(in: 0...255) }
        packet += [UInt8](repeating: 0, count: 1200 - packet.count)
        return packet
    }

    /// Sends the probe (up to 3 times within `timeout`) and waits for any answer; `true` when
    /// a Version Negotiation packet (or anything) came back from `server`.
    public static func answers(_ server: TransportAddress, timeout: Duration) async -> Bool {
        await Task.detached { probe(server, timeout: timeout) }.value
    }

    static func probe(_ server: TransportAddress, timeout: Duration) -> Bool {
        guard let fd = server.connectedDatagramSocket() else { return false }
        defer { close(fd) }
        let packet = probePacket()
        let total = max(1, Int(timeout / .milliseconds(1)))
        let slice = max(1, total / 3)
        var reply = [UInt8](repeating: 0, count: 1500)
        for _ in 0..<3 {
            _ = packet.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(slice)) > 0 else { continue }
            let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            // A Version Negotiation packet: long header, version 0. Anything else from the
            // server still proves UDP gets through.
            if n > 0 { return true }
        }
        return false
    }
}
