import EgressProxy

/// The egress proxy's untrusted-text parsers: the `OPEN` line and the server's answer
/// (`ProxyLine`, fed through `ProxyLineBuffer` in chunks), the allow file
/// (`ProxyAllowList(parsing:)`) and the agent's request head (`HTTPRequestHeadParser`, then
/// `ProxyRequestPlan.plan`) and the destination's response heads (`HTTPResponseHeadFilter`).
///
/// Input: `selector u8, chunkSeed u8, bytes`. `selector % 4` picks the parser.
///
/// Properties: chunked line reading = whole; a line never exceeds the limit; a parsed `OPEN`
/// survives `ProxyLine.open` → parse; an `ERR` line we write parses back to its code; an allow
/// file that parsed allows `*`-free names only through a glob or `*`; a parsed request head,
/// fed again in chunks, gives the same head; a plan's host is a valid `ProxyHost` and its port
/// is 1–65535; the policy classifies every parsed address without trapping.
public enum EgressProxyFuzzTarget {
    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let selector = input.u8()
        let chunkSeed = input.u8()
        let bytes = input.rest()
        switch selector % 4 {
        case 0: lines(bytes, chunkSeed: chunkSeed)
        case 1: allowFile(bytes)
        case 2: requestHead(bytes, chunkSeed: chunkSeed)
        default: responseHeads(bytes, chunkSeed: chunkSeed)
        }
    }

    static func lines(_ bytes: ArraySlice<UInt8>, chunkSeed: UInt8) {
        var whole = ProxyLineBuffer()
        let direct = whole.append(bytes)
        var chunked = ProxyLineBuffer()
        var result = ProxyLineBuffer.Result.needMore
        for chunk in FuzzChunks.split(bytes, seed: chunkSeed) {
            result = chunked.append(chunk)
            if result != .needMore { break }
        }
        switch (direct, result) {
        case (.line(let a, _), .line(let b, _)): fuzzCheck(a == b, "chunked line differs")
        case (.tooLong, .tooLong), (.needMore, .needMore): break
        default: fuzzCheck(false, "chunked reading decided \(result), whole \(direct)")
        }
        guard case .line(let line, _) = direct else { return }
        fuzzCheck(line.count < ProxyDefaults.maximumLineLength, "line over the limit")
        if let open = try? ProxyLine.parseOpen(line) {
            fuzzCheck(ProxyHost(open.host) != nil, "OPEN host \(open.host) is no host")
            fuzzCheck((1...65535).contains(open.port), "OPEN port out of range")
            let again = Array(ProxyLine.open(host: open.host, port: open.port).utf8).dropLast()
            fuzzCheck((try? ProxyLine.parseOpen(again)) == open, "OPEN does not survive its own line")
            if let host = ProxyHost(open.host) {
                _ = DestinationPolicy().check(host: host, port: open.port)
            }
        }
        switch ProxyLine.parseAnswer(line) {
        case .error(let code?, _, let text):
            let written = Array(ProxyLine.error(code, text).utf8)
            fuzzCheck(written.count <= ProxyDefaults.maximumLineLength, "ERR line over the limit")
            if case .error(let again?, _, _) = ProxyLine.parseAnswer(written.dropLast()) {
                fuzzCheck(again == code, "ERR code changed")
            } else {
                fuzzCheck(false, "our ERR line does not parse")
            }
        case .ok, .error, .malformed:
            break
        }
    }

    static func allowFile(_ bytes: ArraySlice<UInt8>) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let list = try? ProxyAllowList(parsing: text) else { return }
        let policy = DestinationPolicy(allowList: list)
        for entry in list.entries {
            if let ports = entry.ports { fuzzCheck(ports.allSatisfy { (1...65535).contains($0) }, "bad port kept") }
            switch entry.pattern {
            case .network(let address, let bits):
                fuzzCheck(bits >= 0 && bits <= address.bytes.count * 8, "bad prefix length kept")
                fuzzCheck(address.isIn(address, bits: bits), "a network does not contain itself")
                _ = policy.check(host: .address(address), port: entry.ports?.first ?? 80)
            case .glob(let glob):
                if !glob.contains("*"), let host = ProxyHost(glob), case .name = host {
                    fuzzCheck(list.allowsName(glob, port: entry.ports?.first ?? 80), "a plain name does not allow itself")
                }
            case .any:
                fuzzCheck(list.allowsName("example.com", port: entry.ports?.first ?? 443), "* does not allow a name")
            }
        }
    }

    static func requestHead(_ bytes: ArraySlice<UInt8>, chunkSeed: UInt8) {
        var whole = HTTPRequestHeadParser(limit: 4096)
        let direct = whole.append(bytes)
        var chunked = HTTPRequestHeadParser(limit: 4096)
        var result = HTTPRequestHeadParser.Result.needMore
        var fed = 0
        for chunk in FuzzChunks.split(bytes, seed: chunkSeed) {
            fed += chunk.count
            result = chunked.append(chunk)
            if result != .needMore { break }
        }
        switch (direct, result) {
        case (.head(let a, _), .head(let b, _)): fuzzCheck(a == b, "chunked head differs")
        case (.invalid, .invalid), (.needMore, .needMore), (.tooLarge, .tooLarge): break
        // The limit is checked per call, so where a too-large head is noticed depends on chunks.
        case (.tooLarge, _), (_, .tooLarge): break
        default: fuzzCheck(false, "chunked head decided \(result), whole \(direct)")
        }
        guard case .head(let head, _) = direct, let plan = try? ProxyRequestPlan.plan(head) else { return }
        fuzzCheck(ProxyHost(plan.host) != nil, "planned host \(plan.host) is no host")
        fuzzCheck((1...65535).contains(plan.port), "planned port out of range")
        if case .forward(let out, _) = plan.mode {
            var reparse = HTTPRequestHeadParser(limit: 1 << 20)
            guard case .head(let forwarded, let rest) = reparse.append(out) else {
                fuzzCheck(false, "the forwarded head does not parse")
                return
            }
            fuzzCheck(rest.isEmpty, "bytes after the forwarded head")
            fuzzCheck(!forwarded.headers.contains { $0.name.lowercased().hasPrefix("proxy-") }, "a Proxy- header was forwarded")
        }
    }

    static func responseHeads(_ bytes: ArraySlice<UInt8>, chunkSeed: UInt8) {
        var whole = HTTPResponseHeadFilter(limit: 4096)
        let direct = whole.process(bytes) + whole.drain()
        var chunked = HTTPResponseHeadFilter(limit: 4096)
        var out: [UInt8] = []
        for chunk in FuzzChunks.split(bytes, seed: chunkSeed) { out += chunked.process(chunk) }
        out += chunked.drain()
        // The limit is per call, so a head near it may be filtered whole but not in chunks.
        if bytes.count < 4000 { fuzzCheck(out == direct, "chunked filtering differs") }
        if !bytes.starts(with: Array("HTTP/1.".utf8)), !Array("HTTP/1.".utf8).starts(with: bytes) {
            fuzzCheck(direct == Array(bytes), "non-HTTP bytes were changed")
        }
    }

    public static func seeds() -> [[UInt8]] {
        func seed(_ selector: UInt8, _ chunkSeed: UInt8, _ text: String) -> [UInt8] { [selector, chunkSeed] + Array(text.utf8) }
        return [
            seed(0, 0, "OPEN example.com 443\n"),
            seed(0, 3, "OPEN [::1] 80\r\nbytes"),
            seed(0, 1, "ERR circuit_open circuit open for a:80\n"),
            seed(0, 2, "OK\n"),
            seed(0, 5, String(repeating: "A", count: 600)),
            seed(1, 0, "# c\n*.example.com\napi.github.com:443\n10.0.0.0/8:80,8080\n[2001:db8::/32]:22\n*\n"),
            seed(1, 0, "[::ffff:127.0.0.1]\n169.254.169.254/32\n"),
            seed(2, 0, "GET http://example.com/x HTTP/1.1\r\nHost: e\r\nProxy-Authorization: x\r\n\r\n"),
            seed(2, 4, "CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
            seed(2, 7, "GET http://h/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            seed(2, 2, "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: x, Transfer-Encoding\r\n\r\n0\r\n\r\n"),
            seed(3, 1, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nKeep-Alive: 5\r\nProxy-X: y\r\nContent-Length: 2\r\n\r\nok"),
            seed(3, 6, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{81}\u{0}"),
        ]
    }
}
