import Foundation
import Testing
@testable import RelayConfig

@Suite struct ExampleConfigTests {
    static let examplePath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("config/zrc-relay.toml").path

    @Test func exampleFileParsesAndEqualsTheDefaults() throws {
        let text = try String(contentsOfFile: Self.examplePath, encoding: .utf8)
        let fromFile = try RelaySettingsLoader(fileText: text, environment: [:], flags: []).settings()
        let defaults = try RelaySettingsLoader(fileText: nil, environment: [:], flags: []).settings()
        #expect(fromFile == defaults)
    }

    @Test func exampleFileMentionsEveryKey() throws {
        let text = try String(contentsOfFile: Self.examplePath, encoding: .utf8)
        for spec in Defaults.keys {
            let parts = spec.name.split(separator: ".")
            let section = parts.dropLast().joined(separator: ".")
            let key = String(parts.last ?? "")
            #expect(text.contains("[\(section)]"), "section of \(spec.name)")
            #expect(text.contains("\(key) =") || text.contains("# \(key) ="), "\(spec.name)")
        }
    }
}
