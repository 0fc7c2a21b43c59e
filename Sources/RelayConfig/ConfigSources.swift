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

    public init(key: String, problem: String) {
        self.key = key
        self.problem = problem
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

    /// Reads `ZRC_RELAY_*` variables. A variable with that prefix that names no key is an error.
    public static func environment(_ environment: [String: String]) throws(ConfigError) -> [String: RawConfigValue] {
        let byEnvironmentName = Dictionary(uniqueKeysWithValues: Defaults.keys.map { ($0.environmentName, $0) })
        var out: [String: RawConfigValue] = [:]
        for (name, value) in environment where name.hasPrefix("ZRC_RELAY_") {
            guard let spec = byEnvironmentName[name] else {
                throw ConfigError(key: name, problem: "unknown setting (environment variable)")
            }
            out[spec.name] = raw(value, for: spec)
        }
        return out
    }

    /// Reads `--section.key VALUE` / `--section.key=VALUE` flags (`-` and `_` are the same in
    /// the key). Anything else is an error.
    public static func flags(_ arguments: [String]) throws(ConfigError) -> [String: RawConfigValue] {
        var out: [String: RawConfigValue] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            guard argument.hasPrefix("--"), argument.count > 2 else {
                throw ConfigError(key: argument, problem: "unexpected argument (settings are --section.key VALUE)")
            }
            var name = String(argument.dropFirst(2))
            let value: String
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            } else {
                guard index + 1 < arguments.count else { throw ConfigError(key: name, problem: "missing value") }
                value = arguments[index + 1]
                index += 1
            }
            let key = name.replacingAll("-", with: "_")
            guard let spec = Defaults.byName[key] else { throw ConfigError(key: key, problem: "unknown key") }
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
