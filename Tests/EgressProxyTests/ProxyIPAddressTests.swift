import Testing

@testable import EgressProxy

@Suite struct ProxyIPAddressTests {
    @Test func parsesIPv4() {
        #expect(ProxyIPAddress("127.0.0.1") == .v4(0x7f00_0001))
        #expect(ProxyIPAddress("255.255.255.255") == .v4(0xffff_ffff))
        for bad in ["127.1", "0x7f.0.0.1", "01.2.3.4", "1.2.3.256", "1.2.3", "1.2.3.4.5", "1..3.4", "", "1.2.3.4 ", "١.2.3.4"] {
            #expect(ProxyIPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func parsesIPv6() {
        #expect(ProxyIPAddress("::")?.bytes == [UInt8](repeating: 0, count: 16))
        #expect(ProxyIPAddress("::1")?.bytes == [UInt8](repeating: 0, count: 15) + [1])
        #expect(ProxyIPAddress("2001:db8::1")?.description == "2001:db8::1")
        #expect(ProxyIPAddress("2001:DB8:0:0:0:0:0:1")?.description == "2001:db8::1")
        #expect(ProxyIPAddress("::ffff:127.0.0.1")?.bytes == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1])
        #expect(ProxyIPAddress("1:2:3:4:5:6:7:8")?.description == "1:2:3:4:5:6:7:8")
        #expect(ProxyIPAddress("1::")?.description == "1::")
        #expect(ProxyIPAddress("fe80::1:2")?.description == "fe80::1:2")
        for bad in [":", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7", ":1::", "1:", "::1.2.3", "::1.2.3.4:5",
                    "1:2:3:4:5:6:7::8:9", "fe80::1%eth0"] {
            #expect(ProxyIPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test(arguments: [
        "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
        "169.254.170.2", "100.64.0.1", "100.127.255.255", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250",
        "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "192.0.0.8",
        "::", "::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::10.0.0.1",
        "64:ff9b::7f00:1", "64:ff9b:1::1", "2002:7f00:1::", "2002:a9fe:a9fe::1", "2001::1", "2001:db8::1", "fc00::1",
        "fd12:3456::1", "fe80::1", "febf::1", "fec0::1", "ff02::1", "100::1", "::ffff:0:7f00:1",
    ])
    func refusesSpecialAddresses(_ text: String) throws {
        let address = try #require(ProxyIPAddress(text))
        #expect(address.specialClass != nil, "\(text)")
    }

    @Test(arguments: [
        "8.8.8.8", "1.1.1.1", "93.184.216.34", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1",
        "169.253.1.1", "2606:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
    ])
    func allowsPublicAddresses(_ text: String) throws {
        let address = try #require(ProxyIPAddress(text))
        #expect(address.specialClass == nil, "\(text)")
    }

    @Test func cidrMembership() throws {
        let net = try #require(ProxyIPAddress("10.0.0.0"))
        #expect(try #require(ProxyIPAddress("10.200.0.1")).isIn(net, bits: 8))
        #expect(!(try #require(ProxyIPAddress("11.0.0.1")).isIn(net, bits: 8)))
        #expect(try #require(ProxyIPAddress("::ffff:10.0.0.1")).isIn(net, bits: 8))
        #expect(try #require(ProxyIPAddress("1.2.3.4")).isIn(net, bits: 0))
        let mapped = try #require(ProxyIPAddress("::ffff:127.0.0.1"))
        #expect(mapped.isIn(mapped, bits: 128))
        #expect(try #require(ProxyIPAddress("127.0.0.1")).isIn(mapped, bits: 128))
        #expect(try #require(ProxyIPAddress("127.9.9.9")).isIn(mapped, bits: 104))
        #expect(!(try #require(ProxyIPAddress("::1")).isIn(net, bits: 0)))
        let v6 = try #require(ProxyIPAddress("2001:db8::"))
        #expect(try #require(ProxyIPAddress("2001:db8:ffff::1")).isIn(v6, bits: 32))
        #expect(!(try #require(ProxyIPAddress("2001:db9::1")).isIn(v6, bits: 32)))
        #expect(try #require(ProxyIPAddress("10.0.0.1")).isIn(v6, bits: 0))  // as ::ffff:10.0.0.1
    }

    @Test func hosts() {
        #expect(ProxyHost("Example.COM.") == .name("example.com"))
        #expect(ProxyHost("[::1]") == .address(.v6([UInt8](repeating: 0, count: 15) + [1])))
        #expect(ProxyHost("10.0.0.1") == .address(.v4(0x0a00_0001)))
        #expect(ProxyHost("127.1") == .name("127.1"))
        #expect(ProxyHost("") == nil)
        #expect(ProxyHost("a b") == nil)
        #expect(ProxyHost("a..b") == nil)
        #expect(ProxyHost(String(repeating: "a", count: 64) + ".com") == nil)
        #expect(ProxyHost("[example.com]") == nil)
    }
}
