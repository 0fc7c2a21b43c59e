import Testing

@testable import EgressProxy

@Suite struct ProxyAllowListTests {
    @Test func parsesEveryEntryForm() throws {
        let list = try ProxyAllowList(parsing: """
            # comment
            *.example.com
            api.github.com:443   # trailing comment
            10.0.0.0/8:80,8080
            192.0.2.7
            [2001:db8::1]:22
            [2001:db8::]/32
            [fd00::/8]:443

            """)
        #expect(list.entries.count == 7)
        #expect(list.entries[0] == .init(pattern: .glob("*.example.com"), ports: [80, 443]))
        #expect(list.entries[1] == .init(pattern: .glob("api.github.com"), ports: [443]))
        #expect(list.entries[2] == .init(pattern: .network(.v4(0x0a00_0000), bits: 8), ports: [80, 8080]))
        #expect(list.entries[3] == .init(pattern: .network(.v4(0xc000_0207), bits: 32), ports: [80, 443]))
        #expect(list.entries[4].ports == [22])
        #expect(list.entries[5] == .init(pattern: .network(try #require(ProxyIPAddress("2001:db8::")), bits: 32), ports: [80, 443]))
        #expect(list.entries[6] == .init(pattern: .network(try #require(ProxyIPAddress("fd00::")), bits: 8), ports: [443]))
    }

    @Test func starAlone() throws {
        let any = try ProxyAllowList(parsing: "*")
        #expect(any.allowsName("x.y", port: 5))
        #expect(any.allowsAddress(.v4(1), port: 65535))
        let anyOn8080 = try ProxyAllowList(parsing: "*:8080")
        #expect(anyOn8080.allowsName("x.y", port: 8080))
        #expect(!anyOn8080.allowsName("x.y", port: 80))
    }

    @Test(arguments: [
        ("example.com:0", 1), ("example.com:99999", 1), ("example.com:", 1), ("ex ample.com", 1), ("[example.com]", 1),
        ("10.0.0.0/33", 1), ("10.0.0.0/", 1), ("[::1", 1), ("[::1]x", 1), ("é.com", 1), ("ok.com\nbad..:1:2", 2),
        ("10.0.0.1/8x", 1), ("[::]/129", 1),
    ])
    func namesTheBadLine(_ text: String, _ line: Int) {
        do {
            _ = try ProxyAllowList(parsing: text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.line == line)
        }
    }

    @Test func refusesHugeLines() {
        #expect(throws: ProxyAllowList.ParseError.self) { try ProxyAllowList(parsing: String(repeating: "a", count: 5000)) }
    }

    @Test func globs() {
        #expect(ProxyAllowList.globMatches(Array("*.example.com".utf8), Array("a.example.com".utf8)))
        #expect(ProxyAllowList.globMatches(Array("*.example.com".utf8), Array("a.b.example.com".utf8)))
        #expect(!ProxyAllowList.globMatches(Array("*.example.com".utf8), Array("example.com".utf8)))
        #expect(!ProxyAllowList.globMatches(Array("*.example.com".utf8), Array("a.example.com.evil".utf8)))
        #expect(ProxyAllowList.globMatches(Array("api*.x".utf8), Array("api-eu.x".utf8)))
        #expect(ProxyAllowList.globMatches(Array("a*b*c".utf8), Array("aXXbYYc".utf8)))
        #expect(!ProxyAllowList.globMatches(Array("a*b*c".utf8), Array("aXXbYY".utf8)))
        #expect(ProxyAllowList.globMatches(Array("**".utf8), Array("".utf8)))
        let stars = Array(String(repeating: "*a", count: 100).utf8)
        #expect(!ProxyAllowList.globMatches(stars, Array(String(repeating: "a", count: 99).utf8)))
    }

    @Test func globsMatchNamesOnly() throws {
        let list = try ProxyAllowList(parsing: "*.0.0.1\n*1")
        #expect(!list.allowsAddress(.v4(0x7f00_0001), port: 80))
        #expect(list.allowsName("a.0.0.1", port: 80))
    }
}

@Suite struct DestinationPolicyTests {
    let open = DestinationPolicy()

    @Test func defaultAllowsAnyHostOn80And443() {
        #expect(open.check(host: .name("example.com"), port: 443) == .resolve(addressesMustMatch: false))
        #expect(open.check(host: .name("example.com"), port: 80) == .resolve(addressesMustMatch: false))
        #expect(open.check(host: .name("example.com"), port: 22) == .denied("not in the allow list"))
        #expect(open.check(host: .address(.v4(0x0808_0808)), port: 443) == .dial(.v4(0x0808_0808)))
    }

    @Test(arguments: ["127.0.0.1", "169.254.169.254", "169.254.170.2", "10.0.0.1", "100.64.1.1", "::ffff:127.0.0.1", "fd00::1", "::1", "0.0.0.0"])
    func deniesSpecialLiterals(_ text: String) throws {
        let address = try #require(ProxyIPAddress(text))
        guard case .denied = open.check(host: .address(address), port: 80) else {
            Issue.record("\(text) allowed")
            return
        }
        let permissive = DestinationPolicy(allowPrivate: true)
        #expect(permissive.check(host: .address(address), port: 80) == .dial(address))
    }

    @Test func deniesLocalhostNamesBeforeResolving() {
        #expect(open.check(host: .name("localhost"), port: 80) == .denied("loopback name"))
        #expect(open.check(host: .name("foo.localhost"), port: 80) == .denied("loopback name"))
        #expect(DestinationPolicy(allowPrivate: true).check(host: .name("localhost"), port: 80) == .resolve(addressesMustMatch: false))
    }

    @Test func checksEveryResolvedAddress() {
        let pub = ProxyIPAddress.v4(0x0808_0808), loop = ProxyIPAddress.v4(0x7f00_0001)
        #expect(open.check(addresses: [pub], port: 80, addressesMustMatch: false) == .dial([pub]))
        guard case .denied = open.check(addresses: [pub, loop], port: 80, addressesMustMatch: false) else {
            Issue.record("mixed answer allowed")
            return
        }
        guard case .denied = open.check(addresses: [], port: 80, addressesMustMatch: false) else {
            Issue.record("empty answer allowed")
            return
        }
        #expect(DestinationPolicy(allowPrivate: true).check(addresses: [pub, loop], port: 80, addressesMustMatch: false) == .dial([pub, loop]))
    }

    @Test func allowListWithNetworksOnly() throws {
        let policy = DestinationPolicy(allowList: try ProxyAllowList(parsing: "203.0.113.0/24:443\n8.8.8.8:53"), allowPrivate: true)
        #expect(policy.check(host: .name("dns.example"), port: 53) == .resolve(addressesMustMatch: true))
        #expect(policy.check(addresses: [.v4(0x0808_0808)], port: 53, addressesMustMatch: true) == .dial([.v4(0x0808_0808)]))
        guard case .denied = policy.check(addresses: [.v4(0x0808_0404)], port: 53, addressesMustMatch: true) else {
            Issue.record("address outside the list allowed")
            return
        }
        #expect(policy.check(host: .address(.v4(0xcb00_7105)), port: 443) == .dial(.v4(0xcb00_7105)))
        guard case .denied = policy.check(host: .address(.v4(0xcb00_7105)), port: 80) else {
            Issue.record("wrong port allowed")
            return
        }
        let namesOnly = DestinationPolicy(allowList: try ProxyAllowList(parsing: "*.example.com"))
        #expect(namesOnly.check(host: .name("other.org"), port: 443) == .denied("not in the allow list"))
        #expect(namesOnly.check(host: .name("a.example.com"), port: 443) == .resolve(addressesMustMatch: false))
        guard case .denied = namesOnly.check(host: .address(.v4(0x0808_0808)), port: 443) else {
            Issue.record("a glob allowed an address")
            return
        }
    }

    @Test func neverDialsItself() {
        let policy = DestinationPolicy(allowList: try! ProxyAllowList(parsing: "*"), allowPrivate: true,
                                       selfAddresses: [.v4(0xc0a8_0001)], selfPorts: [8443])
        guard case .denied = policy.check(host: .address(.v4(0x7f00_0001)), port: 8443) else { Issue.record("loopback self"); return }
        guard case .denied = policy.check(host: .address(.v4(0xc0a8_0001)), port: 8443) else { Issue.record("own address"); return }
        guard case .denied = policy.check(addresses: [.v4(0)], port: 8443, addressesMustMatch: false) else { Issue.record("0.0.0.0"); return }
        guard case .denied = policy.check(host: .address(ProxyIPAddress("::ffff:127.0.0.1")!), port: 8443) else { Issue.record("mapped"); return }
        #expect(policy.check(host: .address(.v4(0x7f00_0001)), port: 8444) == .dial(.v4(0x7f00_0001)))
    }
}
