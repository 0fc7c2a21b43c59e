import TOMLKit

/// A raw value from one source, before it is checked against its key's kind.
public enum RawConfigValue: Sendable, Hashable {
    case scalar(String)
    case list([String])
}

/// A configuration problem: one line naming the key and what is wrong. `config check` and
/// `serve` print it and exit 2.
public struct ConfigError: Error, Hashable, CustomStringConvertible {
    /// The key (or file) concerned.
    public let key: String
    /// What is wrong with it.
    public let problem: String
    /// A command-line usage error (an unknown flag, a flag without its value): the caller
    /// prints the usage too (DESIGN §2 v3).
    public let isUsageError: Bool

    public init(key: String, problem: String, isUsageError: Bool = false) {
        self.key = key
        self.problem = problem
        self.isUsageError = isUsageError
    }

    /// One line: a key taken from a file or the command line is cut to 80 characters, and
    /// no control character (a newline in a value or a parser message) survives.
    public var description: String {
        let shownKey = key.unicodeScalars.count > 80 ? String(String.UnicodeScalarView(key.unicodeScalars.prefix(80))) + "…" : key
        var line = ""
        for scalar in "\(shownKey): \(problem)".unicodeScalars {
            switch scalar {
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += " "
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F { line += "?" } else { line.unicodeScalars.append(scalar) }
            }
        }
        return line
    }
}

/// Reads each layer into a flat `[dotted key: raw value]`, rejecting unknown keys.
public enum ConfigSources {
    /// Parses TOML text. Tables map to dotted prefixes (`[limits] max_allocations = 5` →
    /// `limits.max_allocations`); arrays must hold strings.
    public static func toml(_ text: String, file: String) throws(ConfigError) -> [String: RawConfigValue] {
        try TOMLGate.check(text, file: file)
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(key: file, problem: "not valid TOML: \(error.description) at \(error.source.begin.debugDescription)")
        } catch {
            throw ConfigError(key: file, problem: "not valid TOML: \(error)")
        }
        var out: [String: RawConfigValue] = [:]
        try flatten(table, prefix: "", into: &out)
        return out
    }

    private static func flatten(_ table: TOMLTable, prefix: String, into out: inout [String: RawConfigValue]) throws(ConfigError) {
        for key in table.keys {
            guard let value = table[key]?.tomlValue else { continue }
            let name = prefix.isEmpty ? key : prefix + "." + key
            switch value.type {
            case .table:
                guard let inner = value.table else { continue }
                if Defaults.byName[name] != nil {
                    throw ConfigError(key: name, problem: "expected a value, found a table")
                }
                guard Defaults.keys.contains(where: { $0.name.hasPrefix(name + ".") }) else {
                    throw ConfigError(key: name, problem: "unknown section")
                }
                try flatten(inner, prefix: name, into: &out)
            case .array:
                guard Defaults.byName[name] != nil else { throw ConfigError(key: name, problem: "unknown key") }
                var items: [String] = []
                for element in value.array ?? TOMLArray() {
                    guard let s = element.tomlValue.string else {
                        throw ConfigError(key: name, problem: "array elements must be strings")
                    }
                    items.append(s)
                }
                out[name] = .list(items)
            case .string, .int, .bool, .double:
                guard Defaults.byName[name] != nil else { throw ConfigError(key: name, problem: "unknown key") }
                let text: String
                if let s = value.string { text = s }
                else if let i = value.int { text = String(i) }
                else if let b = value.bool { text = b ? "true" : "false" }
                else if let d = value.double { text = String(d) }
                else { throw ConfigError(key: name, problem: "unsupported value") }
                out[name] = .scalar(text)
            default:
                throw ConfigError(key: name, problem: "dates and times are not accepted here")
            }
        }
    }

    /// Reads `ZRC_RELAY_*` variables (DESIGN §2 v3). A name that is exactly a key's is that
    /// setting; an empty value means unset. Other names are ignored (and returned, to be
    /// listed once in a warning) when orchestrators make them — Kubernetes service links such
    /// as `ZRC_RELAY_SERVICE_HOST`, `ZRC_RELAY_PORT=udp://…`, `ZRC_RELAY_METRICS_PORT`,
    /// `ZRC_RELAY_PORT_4433_UDP_ADDR` — or when they lie outside every section; a name inside
    /// a section that is no key (`ZRC_RELAY_LIMITS_MAX_ALOCATIONS`) is a typo and an error.
    public static func environment(
        _ environment: [String: String]
    ) throws(ConfigError) -> (values: [String: RawConfigValue], ignored: [String]) {
        let byEnvironmentName = Dictionary(uniqueKeysWithValues: Defaults.keys.map { ($0.environmentName, $0) })
        var out: [String: RawConfigValue] = [:]
        var ignored: [String] = []
        for name in environment.keys.sorted() where name.hasPrefix(environmentPrefix) {
            guard let value = environment[name] else { continue }
            if let spec = byEnvironmentName[name] {
                if !value.isEmpty { out[spec.name] = raw(value, for: spec) }
                continue
            }
            let rest = String(name.dropFirst(environmentPrefix.count))
            if isOrchestratorShaped(rest) || !sectionPrefixes.contains(where: { rest.hasPrefix($0) }) {
                ignored.append(name)
                continue
            }
            throw ConfigError(key: name, problem: "unknown setting (environment variable); see config/zrc-relay.toml for the keys")
        }
        return (out, ignored)
    }

    static let environmentPrefix = "ZRC_RELAY_"

    /// `LIMITS_`, `SERVER_`, …: the environment form of every section.
    static let sectionPrefixes: Set<String> = Set(Defaults.keys.compactMap { spec in
        spec.name.split(separator: ".").first.map { $0.uppercased() + "_" }
    })

    /// Names Kubernetes (and Docker links) derive from Service names: `…_SERVICE_HOST`,
    /// `…_SERVICE_PORT…`, `…_PORT`, `…_PORT_<n>_<UDP|TCP|SCTP>[_PROTO|_PORT|_ADDR]`, `…_ENV_…`,
    /// `…_NAME`. `rest` is the name without `ZRC_RELAY_`; the bare `PORT`, `SERVICE_HOST` count.
    static func isOrchestratorShaped(_ rest: String) -> Bool {
        let name = "_" + rest
        if name.hasSuffix("_SERVICE_HOST") || name.contains("_SERVICE_PORT") || name.hasSuffix("_PORT")
            || name.contains("_ENV_") || name.hasSuffix("_NAME")
        {
            return true
        }
        // _PORT_<digits>_<proto>[_…]
        let parts = name.split(separator: "_", omittingEmptySubsequences: false)
        for (index, part) in parts.enumerated() where part == "PORT" && index + 2 < parts.count {
            let number = parts[index + 1]
            let proto = parts[index + 2]
            if !number.isEmpty, number.allSatisfy(\.isNumber), ["UDP", "TCP", "SCTP"].contains(proto) { return true }
        }
        return false
    }

    /// Reads `--section.key VALUE` / `--section.key=VALUE` flags (`-` and `_` are the same in
    /// the key). Anything else is an error.
    public static func flags(_ arguments: [String]) throws(ConfigError) -> [String: RawConfigValue] {
        var out: [String: RawConfigValue] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            guard argument.hasPrefix("--"), argument.count > 2 else {
                throw ConfigError(key: argument, problem: "unexpected argument (settings are --section.key VALUE)", isUsageError: true)
            }
            var name = String(argument.dropFirst(2))
            var inlineValue: String?
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            let key = name.replacingAll("-", with: "_")
            guard let spec = Defaults.byName[key] else {
                throw ConfigError(key: "--\(name)", problem: "unknown option", isUsageError: true)
            }
            let value: String
            if let inlineValue {
                value = inlineValue
            } else {
                guard index + 1 < arguments.count else {
                    throw ConfigError(key: "--\(name)", problem: "missing value", isUsageError: true)
                }
                value = arguments[index + 1]
                index += 1
            }
            out[key] = raw(value, for: spec)
            index += 1
        }
        return out
    }

    private static func raw(_ text: String, for spec: ConfigKeySpec) -> RawConfigValue {
        if case .stringList = spec.kind {
            return .list(text.split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty })
        }
        return .scalar(text)
    }
}
