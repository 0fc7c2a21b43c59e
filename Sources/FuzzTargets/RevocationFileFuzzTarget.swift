import RelayCore

/// `RevocationList(fileText:)` (the `auth.revocations_file` parser) and
/// `RevocationList.Target(text:)` (the admin API's `DELETE /admin/revocations/{id-or-key}`).
///
/// Input: the file text. Errors are expected; the properties are that nothing traps, that a
/// list that parsed writes a file that parses back to the same list, and that an error names a
/// line of the input.
public enum RevocationFileFuzzTarget {
    public static func run(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        do {
            let list = try RevocationList(fileText: text)
            let again = try? RevocationList(fileText: list.fileText)
            fuzzCheck(again == list, "a parsed revocation list does not survive its own file form")
            for entry in list.all {
                fuzzCheck(RevocationList.Target(text: entry.target.description) == entry.target, "a target does not parse from its text")
            }
        } catch {
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
            fuzzCheck(error.line >= 1 && error.line <= lines, "an error names a line outside the input")
        }
        for word in text.split(separator: " ").prefix(4) {
            _ = RevocationList.Target(text: String(word))
        }
    }

    public static func seeds() -> [[UInt8]] {
        [
            "allocation 00112233445566778899aabbccddeeff 1767225600\n",
            "# comment\nsigner AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA 1\n\n",
            "allocation 00112233445566778899AABBCCDDEEFF 18446744073709551615 # max\n",
            "allocation xyz 1\n",
            "signer\tAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\t5\r\n",
        ].map { Array($0.utf8) }
    }
}
