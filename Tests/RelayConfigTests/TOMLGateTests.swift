import Foundation
import Testing
@testable import RelayConfig

@Suite struct TOMLGateTests {
    func problem(_ text: String) -> String? {
        do {
            try TOMLGate.check(text, file: "f.toml")
            return nil
        } catch {
            return error.description
        }
    }

    @Test func theExampleConfigurationPasses() throws {
        let text = try String(contentsOfFile: ExampleConfigTests.examplePath, encoding: .utf8)
        #expect(problem(text) == nil)
    }

    @Test func theSubsetWeUseIsAccepted() {
        let text = """
            # comment\r
            [server]
            listen_addr = "0.0.0.0"   # trailing comment
            listen_port = 4_433
            [tiers.free]
            quota = '1GB'
            bandwidth_limit = "10Mbps"
            [security]
            blocklist = [
              "10.0.0.0/8",  # one
              "192.168.0.0/16",
            ]
            allowlist = []
            ratio = -1.5e3
            enabled = true
            name = "caf\\u00e9 \\"x\\""
            """
        #expect(problem(text) == nil)
    }

    /// The inputs that abort toml++ in a debug build (and are undefined behaviour in release).
    @Test func theInputsThatCrashTomlPlusPlusAreRefusedWithALine() {
        #expect(problem("[= \"1h\"") == "f.toml: not valid TOML: line 1: expected a key (letters, digits, '_' or '-'), found '='")
        #expect(problem("x = 1979-05-27T\u{10}7:32:00Z")?.contains("dates and times are not accepted") == true)
    }

    @Test func constructsOutsideTheSubsetAreNamed() {
        let cases: [(String, String)] = [
            ("[[a]]", "arrays of tables"),
            ("a = {b = 1}", "inline tables"),
            ("a = \"\"\"x\"\"\"", "multi-line strings"),
            ("a = 0x10", "only decimal"),
            ("a = inf", "is not a value"),
            ("a = 10Mbps", "after a number"),
            ("a = \"open", "not closed"),
            ("a = [1, 2", "array is not closed"),
            ("a = \"x\" b", "unexpected"),
            ("\n\na =", "line 3"),
            ("a = \"\\q\"", "unknown escape"),
            ("a = \"\u{01}\"", "control character"),
            ("a = [[[[[[1]]]]]]", "nested too deeply"),
        ]
        for (text, expected) in cases {
            let message = problem(text)
            #expect(message?.contains(expected) == true, "\(text) → \(message ?? "accepted")")
        }
    }

    @Test func arbitraryBytesNeverTrap() {
        var state: UInt64 = 0x1234_5678
        let alphabet = Array("[]=\"'#.,\n\r\t -_aZ09eE+{}\\u".utf8)
        for _ in 0..<2000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int(state % 64) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes.append(alphabet[Int(state >> 58) % alphabet.count])
            }
            _ = problem(String(decoding: bytes, as: UTF8.self))
        }
    }
}
