/// The report of `zrc-relay client diagnose` (DESIGN §8): one line per step with `ok`, `fail`
/// or `skip`, the measured figure, and for a failure its category, a code and a hint an
/// operator can act on; then a verdict with a quality grade. Pure: the CLI runs the steps
/// and records them here; rendering, the verdict and the grade are decided here.
public struct ClientDiagnosis: Sendable {
    /// The steps, in the order DESIGN §8 lists them.
    public enum Step: String, Sendable, CaseIterable {
        case dns, udp, quic, certificate, token, allocate, datagrams, tcp, websocket
    }

    public enum Status: String, Sendable { case ok, fail, skip }

    /// Who can fix a failure.
    public enum Category: String, Sendable { case network, authentication, configuration, server }

    /// One step's outcome.
    public struct Result: Sendable, Equatable {
        public var step: Step
        public var status: Status
        /// What was measured (`12 ms`, `2 addresses`, `p50 1.9 ms …`), or why it was skipped.
        public var figure: String
        public var category: Category?
        /// Stable code of the failure (listed in docs/TROUBLESHOOTING.md).
        public var code: String?
        public var hint: String?

        public static func ok(_ step: Step, _ figure: String) -> Result {
            Result(step: step, status: .ok, figure: figure)
        }

        public static func skip(_ step: Step, _ why: String) -> Result {
            Result(step: step, status: .skip, figure: why)
        }

        public static func fail(_ step: Step, _ figure: String, _ failure: Failure) -> Result {
            Result(step: step, status: .fail, figure: figure, category: failure.category, code: failure.code, hint: failure.hint)
        }
    }

    /// A failure's category, code and hint.
    public struct Failure: Sendable, Equatable {
        public var category: Category
        public var code: String
        public var hint: String

        public init(_ category: Category, _ code: String, _ hint: String) {
            self.category = category
            self.code = code
            self.hint = hint
        }
    }

    /// Round-trip figures of the datagram step.
    public struct RoundTrip: Sendable, Equatable {
        public var p50Milliseconds: Double
        public var p99Milliseconds: Double
        public var loss: Double
        public var largestPayload: Int

        public init(p50Milliseconds: Double, p99Milliseconds: Double, loss: Double, largestPayload: Int) {
            self.p50Milliseconds = p50Milliseconds
            self.p99Milliseconds = p99Milliseconds
            self.loss = loss
            self.largestPayload = largestPayload
        }
    }

    /// Link quality from the round trip: excellent (p50 < 50 ms, no loss), good (< 100 ms,
    /// < 1 %), fair (< 250 ms, < 5 %), else poor.
    public enum Quality: String, Sendable {
        case excellent, good, fair, poor

        public init(_ roundTrip: RoundTrip) {
            switch (roundTrip.p50Milliseconds, roundTrip.loss) {
            case (..<50, 0): self = .excellent
            case (..<100, ..<0.01): self = .good
            case (..<250, ..<0.05): self = .fair
            default: self = .poor
            }
        }
    }

    public let relay: String
    public private(set) var results: [Result] = []
    public var roundTrip: RoundTrip?

    public init(relay: String) {
        self.relay = relay
    }

    /// Records a step's outcome (replacing an earlier one); results stay in the order of `Step`.
    public mutating func record(_ result: Result) {
        results.removeAll { $0.step == result.step }
        let order = Step.allCases
        let position = results.firstIndex { order.firstIndex(of: $0.step) ?? 0 > order.firstIndex(of: result.step) ?? 0 } ?? results.endIndex
        results.insert(result, at: position)
    }

    public func result(_ step: Step) -> Result? { results.first { $0.step == step } }

    private func passed(_ step: Step) -> Bool { result(step)?.status == .ok }

    /// The transports that relayed (QUIC needs its datagram round trip; TCP and WebSocket
    /// need ALLOCATED).
    public var workingTransports: [String] {
        var out: [String] = []
        if passed(.quic), passed(.allocate), passed(.datagrams) { out.append("quic") }
        if passed(.tcp) { out.append("tcp") }
        if passed(.websocket) { out.append("websocket") }
        return out
    }

    /// Every step needed for relaying passed: the name resolved, the token is good, and at
    /// least one transport relays.
    public var canRelay: Bool {
        passed(.dns) && result(.token)?.status != .fail && !workingTransports.isEmpty
    }

    public var quality: Quality? { roundTrip.map(Quality.init) }

    // MARK: Rendering

    /// One line per step, then the verdict.
    public var text: String {
        var lines: [String] = ["diagnose \(relay)"]
        for result in results {
            var line = "\(result.step.rawValue.padding(11))\(result.status.rawValue.padding(5))\(result.figure)"
            if let category = result.category, let code = result.code {
                line += "\n           [\(category.rawValue)/\(code)] \(result.hint ?? "")"
            }
            lines.append(line)
        }
        lines.append(verdictLine)
        return lines.joined(separator: "\n")
    }

    public var verdictLine: String {
        guard canRelay else {
            let first = results.first { $0.status == .fail }
            return "verdict    fail: this client cannot relay through \(relay)" + (first.map { " (first failure: \($0.step.rawValue), \($0.code ?? ""))" } ?? "")
        }
        var line = "verdict    ok: relaying works over \(workingTransports.joined(separator: ", "))"
        if let quality { line += "; quality \(quality.rawValue)" }
        return line
    }

    /// The same as one JSON object.
    public var json: String {
        func string(_ value: String?) -> String { value.map(JSONText.quote) ?? "null" }
        let steps = results.map { result in
            "{\"step\":\"\(result.step.rawValue)\",\"status\":\"\(result.status.rawValue)\",\"figure\":\(string(result.figure)),"
                + "\"category\":\(string(result.category?.rawValue)),\"code\":\(string(result.code)),\"hint\":\(string(result.hint))}"
        }
        var roundTripJSON = "null"
        if let roundTrip {
            roundTripJSON = "{\"rtt_p50_ms\":\(Self.number(roundTrip.p50Milliseconds)),\"rtt_p99_ms\":\(Self.number(roundTrip.p99Milliseconds)),"
                + "\"loss\":\(Self.number(roundTrip.loss)),\"largest_payload\":\(roundTrip.largestPayload)}"
        }
        return "{\"relay\":\(string(relay)),\"ok\":\(canRelay),\"transports\":[\(workingTransports.map { "\"\($0)\"" }.joined(separator: ","))],"
            + "\"quality\":\(string(quality?.rawValue)),\"round_trip\":\(roundTripJSON),\"steps\":[\(steps.joined(separator: ","))]}"
    }

    static func number(_ value: Double) -> String {
        value.isFinite ? "\((value * 1000).rounded() / 1000)" : "null"
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}

extension ClientDiagnosis.Failure {
    /// The category and hint for an ERROR code the relay sent in answer to ALLOCATE.
    public static func allocateRefused(_ code: RelayErrorCode, reason: String) -> Self {
        let text = reason.isEmpty ? "" : " (\(reason))"
        switch code {
        case .invalidToken:
            return .init(.authentication, code.name, "the relay cannot read the token\(text): mint a new one with `zrc-relay token mint`")
        case .untrustedKey:
            return .init(.authentication, code.name, "the relay does not trust the token's signer\(text): add its public key to auth.trusted_keys")
        case .tokenExpired:
            return .init(.authentication, code.name, "the token has expired\(text): mint a fresh one (and check this machine's clock)")
        case .tokenNotYetValid:
            return .init(.authentication, code.name, "the token is not valid yet\(text): the clocks of the minting host and the relay disagree")
        case .wrongAudience:
            return .init(.configuration, code.name, "the token is for another relay\(text): its audience must match auth.audience")
        case .revoked:
            return .init(.authentication, code.name, "the token or its signer was revoked by the relay's operator")
        case .allocationMismatch, .unknownPeer:
            return .init(.configuration, code.name, "the token does not fit this peer\(text): --peer must be peer_a or peer_b of the token")
        case .capacity, .rateLimited, .unavailable, .draining, .internal:
            return .init(.server, code.name, "the relay refused for its own reasons\(text): try again later or another instance")
        case .blocked:
            return .init(.server, code.name, "the relay blocks this client's address: ask its operator")
        case .allocationEnded, .released, .allocationExpired:
            return .init(.authentication, code.name, "this allocation is over\(text): mint a token for a new allocation id")
        default:
            return .init(.server, code.name, "the relay refused the allocation\(text)")
        }
    }
}

/// JSON string literals, for the hand-written JSON lines of logs and reports.
public enum JSONText {
    /// `text` as a JSON string literal, quotes included.
    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
