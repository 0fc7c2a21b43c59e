@testable import ReverseTunnel
import Testing

@Suite struct TunnelReconnectBackoffTests {
    @Test func doublesFromHalfASecondToThirtySecondsWithJitter() {
        var backoff = TunnelReconnectBackoff()
        let steps: [Duration] = [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30)]
        for step in steps {
            var low = backoff
            #expect(low.nextDelay(random: 0) == step / 2)
            #expect(backoff.nextDelay(random: 0.999_999) <= step)
        }
        for _ in 0..<100 { #expect(backoff.nextDelay(random: 1) == .seconds(30)) }
        backoff.reset()
        #expect(backoff.nextDelay(random: 1) == .milliseconds(500))
        #expect(backoff.nextDelay(random: .nan) == .milliseconds(500))
    }
}
