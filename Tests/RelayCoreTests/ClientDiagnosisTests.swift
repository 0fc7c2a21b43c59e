import Foundation
import Testing
@testable import RelayCore

@Suite struct ClientDiagnosisTests {
    func report(_ steps: [ClientDiagnosis.Result], roundTrip: ClientDiagnosis.RoundTrip? = nil) -> ClientDiagnosis {
        var diagnosis = ClientDiagnosis(relay: "relay:4433")
        for step in steps { diagnosis.record(step) }
        diagnosis.roundTrip = roundTrip
        return diagnosis
    }

    @Test func relayingNeedsDNSAGoodTokenAndOneTransport() {
        let quicOnly = report([.ok(.dns, ""), .ok(.quic, ""), .ok(.token, ""), .ok(.allocate, ""), .ok(.datagrams, ""),
                               .fail(.tcp, "", .init(.network, "tcp_unreachable", "h"))])
        #expect(quicOnly.canRelay)
        #expect(quicOnly.workingTransports == ["quic"])
        let tcpOnly = report([.ok(.dns, ""), .fail(.udp, "", .init(.network, "udp_blocked", "h")), .ok(.tcp, "")])
        #expect(tcpOnly.canRelay && tcpOnly.workingTransports == ["tcp"])
        let noAllocate = report([.ok(.dns, ""), .ok(.quic, ""), .ok(.token, ""), .fail(.allocate, "", .allocateRefused(.untrustedKey, reason: ""))])
        #expect(!noAllocate.canRelay)
        let badToken = report([.ok(.dns, ""), .fail(.token, "", .init(.authentication, "token_expired", "h")), .ok(.tcp, "")])
        #expect(!badToken.canRelay)
        #expect(!report([.fail(.dns, "", .init(.network, "dns_failed", "h"))]).canRelay)
    }

    @Test func resultsKeepTheOrderOfTheStepsAndReplaceEarlierOnes() {
        var diagnosis = report([.ok(.token, "t"), .ok(.dns, "d"), .fail(.udp, "u", .init(.network, "udp_blocked", "")), .ok(.websocket, "w")])
        diagnosis.record(.fail(.udp, "u", .init(.network, "udp_blocked", "filled in")))
        #expect(diagnosis.results.map(\.step) == [.dns, .udp, .token, .websocket])
        #expect(diagnosis.result(.udp)?.hint == "filled in")
    }

    @Test func qualityGrades() {
        func grade(_ p50: Double, _ loss: Double) -> ClientDiagnosis.Quality {
            .init(.init(p50Milliseconds: p50, p99Milliseconds: p50 * 2, loss: loss, largestPayload: 1200))
        }
        #expect(grade(10, 0) == .excellent)
        #expect(grade(10, 0.005) == .good)
        #expect(grade(80, 0) == .good)
        #expect(grade(200, 0.02) == .fair)
        #expect(grade(300, 0) == .poor)
        #expect(grade(20, 0.1) == .poor)
    }

    @Test func textAndJSONCarryEveryFailure() throws {
        let diagnosis = report([.ok(.dns, "1 ms"), .fail(.udp, "no \"answer\"", .init(.network, "udp_blocked", "a firewall\nblocks UDP")),
                                .ok(.tcp, "ALLOCATED")],
                               roundTrip: .init(p50Milliseconds: 1.5, p99Milliseconds: 3, loss: 0, largestPayload: 1200))
        #expect(diagnosis.text.contains("[network/udp_blocked] a firewall"))
        #expect(diagnosis.text.hasSuffix("verdict    ok: relaying works over tcp; quality excellent"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(diagnosis.json.utf8)) as? [String: Any])
        #expect(object["ok"] as? Bool == true)
        #expect(object["quality"] as? String == "excellent")
        let steps = try #require(object["steps"] as? [[String: Any]])
        #expect(steps.count == 3)
        #expect(steps[1]["code"] as? String == "udp_blocked")
        #expect(steps[1]["hint"] as? String == "a firewall\nblocks UDP")
        #expect(steps[1]["figure"] as? String == "no \"answer\"")
        #expect((object["round_trip"] as? [String: Any])?["largest_payload"] as? Int == 1200)
    }

    @Test func everyRefusalCodeHasACategoryAndAHint() {
        for code in RelayErrorCode.all {
            let failure = ClientDiagnosis.Failure.allocateRefused(code, reason: "why")
            #expect(failure.code == code.name)
            #expect(!failure.hint.isEmpty)
        }
        #expect(ClientDiagnosis.Failure.allocateRefused(.untrustedKey, reason: "").category == .authentication)
        #expect(ClientDiagnosis.Failure.allocateRefused(.wrongAudience, reason: "").category == .configuration)
        #expect(ClientDiagnosis.Failure.allocateRefused(.capacity, reason: "").category == .server)
    }
}
