@testable import ReverseTunnel
import Testing

@Suite struct TunnelNameTests {
    @Test(arguments: ["a", "myapp", "my-app", "a1", "0", "9-9", String(repeating: "x", count: 63)])
    func validLabels(_ text: String) {
        #expect(TunnelName(text)?.rawValue == text)
    }

    @Test func invalidLabelsSayWhy() {
        #expect(TunnelName.validate("") == .failure(.empty))
        #expect(TunnelName.validate(String(repeating: "x", count: 64)) == .failure(.tooLong(64)))
        #expect(TunnelName.validate("-app") == .failure(.hyphenAtEdge))
        #expect(TunnelName.validate("app-") == .failure(.hyphenAtEdge))
        #expect(TunnelName.validate("-") == .failure(.hyphenAtEdge))
        for bad in ["MyApp", "my_app", "my.app", "my app", "é", "app\n", "*", "a/b", "a:b"] {
            #expect(TunnelName.validate(bad) == .failure(.invalidCharacter), "\(bad)")
        }
    }

    @Test func everyByteOutsideTheAlphabetIsRefused() {
        for byte in UInt8(0)...UInt8(255) {
            let text = String(decoding: [UInt8(ascii: "a"), byte, UInt8(ascii: "b")], as: UTF8.self)
            let allowed = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "-")
            #expect((TunnelName(text) != nil) == allowed, "\(byte)")
        }
    }

    @Test func randomNamesAreValidEightCharactersAndDiffer() {
        var generator = SystemRandomNumberGenerator()
        var seen = Set<String>()
        for _ in 0..<500 {
            let name = TunnelName.random(using: &generator)
            #expect(name.rawValue.count == 8)
            #expect(TunnelName(name.rawValue) == name)
            seen.insert(name.rawValue)
        }
        #expect(seen.count > 490)
    }
}
