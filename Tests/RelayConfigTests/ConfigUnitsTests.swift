import Testing
@testable import RelayConfig

@Suite struct ConfigUnitsTests {
    @Test func durations() {
        #expect(ConfigUnits.duration("30") == .seconds(30))
        #expect(ConfigUnits.duration("30s") == .seconds(30))
        #expect(ConfigUnits.duration("15m") == .seconds(900))
        #expect(ConfigUnits.duration("24h") == .seconds(86_400))
        #expect(ConfigUnits.duration("250ms") == .milliseconds(250))
        #expect(ConfigUnits.duration("2d") == .seconds(172_800))
        #expect(ConfigUnits.duration(" 5s ") == .seconds(5))
        for bad in ["", "s", "-1", "1.5s", "10 parsecs", "99999999999999999999s", "9223372036854775807h"] {
            #expect(ConfigUnits.duration(bad) == nil, "\(bad)")
        }
    }

    @Test func sizes() {
        #expect(ConfigUnits.size("1GB") == 1_000_000_000)
        #expect(ConfigUnits.size("512MiB") == 512 * 1_048_576)
        #expect(ConfigUnits.size("1KiB") == 1024)
        #expect(ConfigUnits.size("1kB") == 1000)
        #expect(ConfigUnits.size("2TB") == 2_000_000_000_000)
        #expect(ConfigUnits.size("1500") == 1500)
        #expect(ConfigUnits.size("1500B") == 1500)
        for bad in ["", "GB", "-5", "1.5GB", "1 XB", "18446744073709551615GB"] {
            #expect(ConfigUnits.size(bad) == nil, "\(bad)")
        }
    }

    @Test func bitRates() {
        #expect(ConfigUnits.bitRate("10Mbps") == 10_000_000)
        #expect(ConfigUnits.bitRate("500kbps") == 500_000)
        #expect(ConfigUnits.bitRate("1Gbps") == 1_000_000_000)
        #expect(ConfigUnits.bitRate("2000000") == 2_000_000)
        #expect(ConfigUnits.bitRate("0") == 0)
        for bad in ["", "Mbps", "fast", "-1Mbps"] { #expect(ConfigUnits.bitRate(bad) == nil, "\(bad)") }
    }

    @Test func eventRates() {
        #expect(ConfigUnits.eventRate("10", defaultWindow: .seconds(60)) == EventRate(count: 10, window: .seconds(60)))
        #expect(ConfigUnits.eventRate("10/min", defaultWindow: .seconds(1)) == EventRate(count: 10, window: .seconds(60)))
        #expect(ConfigUnits.eventRate("2/s", defaultWindow: .seconds(60)) == EventRate(count: 2, window: .seconds(1)))
        #expect(ConfigUnits.eventRate("100/h", defaultWindow: .seconds(60)) == EventRate(count: 100, window: .seconds(3600)))
        for bad in ["", "/min", "10/week", "-1/s", "x/s"] {
            #expect(ConfigUnits.eventRate(bad, defaultWindow: .seconds(60)) == nil, "\(bad)")
        }
    }
}
