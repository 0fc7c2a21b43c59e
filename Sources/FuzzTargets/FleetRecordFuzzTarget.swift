import RelayCore
import SharedState

/// What instances read from each other through Redis: `ControlMessage(text:)` (the
/// `<prefix>control` channel), `SharedAllocation(fields:)` (an allocation hash) and
/// `SharedBlockEntry(cidr:value:)`. Another instance, or anyone with write access to Redis,
/// writes these, so they are parsed like network input.
///
/// Input: text. The first line is tried as a control message; the rest as `field value`
/// lines of an allocation hash (and each value as a block entry). Properties: nothing traps;
/// a message or record that parsed survives its own text form.
public enum FleetRecordFuzzTarget {
    public static func run(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if let first = lines.first, let message = ControlMessage(text: String(first)) {
            fuzzCheck(ControlMessage(text: message.text) == message, "a control message does not survive its text form")
        }
        var fields: [String: String] = [:]
        for line in lines.dropFirst().prefix(64) {
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { continue }
            fields[String(parts[0])] = String(parts[1])
            if let entry = SharedBlockEntry(cidr: String(parts[0]), value: String(parts[1])) {
                fuzzCheck(SharedBlockEntry(cidr: entry.cidr, value: entry.value) == entry, "a block entry does not survive its value form")
            }
        }
        if let record = SharedAllocation(fields: fields) {
            let again = SharedAllocation(fields: Dictionary(record.fields, uniquingKeysWith: { $1 }))
            fuzzCheck(again == record, "an allocation record does not survive its hash form")
        }
    }

    public static func seeds() -> [[UInt8]] {
        let id = "00112233445566778899aabbccddeeff"
        let signer = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        let record = """
            id \(id)
            owner relay1
            signer \(signer)
            peer_a 0102030405060708090a0b0c0d0e0f10
            peer_b 1112131415161718191a1b1c1d1e1f20
            tier 1
            bandwidth 8000000
            quota 1000000
            used 4242
            a_to_b 4000
            b_to_a 242
            created 1767225600
            expires 1767229200
            token_expires 1767229200
            latest_end 1767312000
            state 1
            last_activity 1767225700
            """
        return [
            "revoke \(id) 1767225600\n" + record,
            "revoke \(signer) 5\n",
            "terminate \(id)\n",
            "block 0 192.0.2.0/24\n192.0.2.0/24 0 abuse report\n",
            "unblock 2001:db8::/32\n",
            "unrevoke \(id)\nid zz\n",
        ].map { Array($0.utf8) }
    }
}
