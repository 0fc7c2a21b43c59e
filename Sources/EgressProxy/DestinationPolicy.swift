/// The server's destination policy (DESIGN §12): the allow list, and no private or special
/// address unless `--allow-private`. Pure: the caller resolves names and dials.
///
/// Use: ``check(host:port:)`` first; for ``Decision/resolve(addressesMustMatch:)`` resolve the
/// name once and pass every answer to ``check(addresses:port:addressesMustMatch:)``, then dial
/// one of the addresses it returns (never look the name up again).
public struct DestinationPolicy: Sendable {
    /// What to do with a destination before any lookup.
    public enum Decision: Hashable, Sendable {
        /// Refused, with the reason for the log.
        case denied(String)
        /// An IP literal that passed: dial it.
        case dial(ProxyIPAddress)
        /// A name: resolve it and check every address. With `addressesMustMatch`, no glob
        /// allowed the name, so every address must be allowed by an address/CIDR entry.
        case resolve(addressesMustMatch: Bool)
    }

    /// What to do after the lookup.
    public enum AddressDecision: Hashable, Sendable {
        case denied(String)
        /// Every address passed; dial these (in order).
        case dial([ProxyIPAddress])
    }

    public let allowList: ProxyAllowList
    public let allowPrivate: Bool
    /// Addresses of the proxy server itself (its listen address, when not a wildcard):
    /// together with `selfPorts`, a destination there is refused so the proxy never dials
    /// itself, even with `--allow-private`.
    public var selfAddresses: [ProxyIPAddress]
    public var selfPorts: Set<Int>

    public init(allowList: ProxyAllowList = .default, allowPrivate: Bool = false,
                selfAddresses: [ProxyIPAddress] = [], selfPorts: Set<Int> = []) {
        self.allowList = allowList
        self.allowPrivate = allowPrivate
        self.selfAddresses = selfAddresses
        self.selfPorts = selfPorts
    }

    /// Checks a destination as the agent named it.
    public func check(host: ProxyHost, port: Int) -> Decision {
        switch host {
        case .address(let address):
            guard allowList.allowsAddress(address, port: port) else { return .denied("not in the allow list") }
            if let refusal = refusal(of: address, port: port) { return .denied(refusal) }
            return .dial(address)
        case .name(let name):
            if name == "localhost" || name.hasSuffix(".localhost") {
                guard allowPrivate else { return .denied("loopback name") }
            }
            if allowList.allowsName(name, port: port) { return .resolve(addressesMustMatch: false) }
            // Only address entries could still allow it, if every answer is in them.
            let hasNetworks = allowList.entries.contains { if case .network = $0.pattern { return true } else { return false } }
            return hasNetworks ? .resolve(addressesMustMatch: true) : .denied("not in the allow list")
        }
    }

    /// Checks every address a name resolved to; one refused address refuses the destination
    /// (a name that answers with both a public and a private address is a rebinding attempt
    /// or a misconfiguration either way).
    public func check(addresses: [ProxyIPAddress], port: Int, addressesMustMatch: Bool) -> AddressDecision {
        guard !addresses.isEmpty else { return .denied("no address") }
        for address in addresses {
            if addressesMustMatch, !allowList.allowsAddress(address, port: port) {
                return .denied("resolved address \(address) not in the allow list")
            }
            if let refusal = refusal(of: address, port: port) { return .denied("resolved address \(address): \(refusal)") }
        }
        return .dial(addresses)
    }

    func refusal(of address: ProxyIPAddress, port: Int) -> String? {
        if selfPorts.contains(port) {
            let plain = address.unmapped
            if selfAddresses.contains(plain) { return "the proxy itself" }
            // A wildcard listener answers on loopback and unspecified too.
            if case .v4(let value) = plain, value >> 24 == 127 || value == 0 { return "the proxy itself" }
            if plain == ProxyIPAddress("::1") || plain == ProxyIPAddress("::") { return "the proxy itself" }
        }
        guard !allowPrivate, let special = address.specialClass else { return nil }
        return "\(special) address"
    }
}
