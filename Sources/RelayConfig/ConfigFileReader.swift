import Foundation

/// Reads the text files the configuration names (the TOML file, key and block-list files)
/// and says exactly why one cannot be used: missing, a directory, unreadable, not UTF-8.
public enum ConfigFileReader {
    /// The largest file read (16 MiB): a configuration or list file is far smaller; this
    /// keeps a wrong path (a device, a huge log) from being slurped into memory.
    public static let maximumSize = 16 * 1024 * 1024

    /// The file's text.
    /// - Parameters:
    ///   - path: The file.
    ///   - key: What the error names (the key that gave the path, or the path itself).
    public static func read(_ path: String, key: String) throws(ConfigError) -> String {
        let name = ConfigError.quote(path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ConfigError(key: key, problem: "cannot read \(name): no such file")
        }
        guard !isDirectory.boolValue else {
            throw ConfigError(key: key, problem: "cannot read \(name): it is a directory")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ConfigError(key: key, problem: "cannot read \(name): permission denied")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maximumSize + 1) ?? Data()
        } catch {
            throw ConfigError(key: key, problem: "cannot read \(name): \(error.localizedDescription)")
        }
        guard data.count <= maximumSize else {
            throw ConfigError(key: key, problem: "cannot read \(name): larger than \(maximumSize / 1024 / 1024) MiB")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            let bytes = [UInt8](data)
            let offset = firstInvalidUTF8Offset(bytes) ?? 0
            throw ConfigError(key: key, problem: "cannot read \(name): not UTF-8 text (bad byte at offset \(offset))")
        }
        return text
    }

    /// The offset of the first byte that does not belong to valid UTF-8.
    static func firstInvalidUTF8Offset(_ bytes: [UInt8]) -> Int? {
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            let length: Int
            switch lead {
            case 0x00...0x7F: length = 1
            case 0xC2...0xDF: length = 2
            case 0xE0...0xEF: length = 3
            case 0xF0...0xF4: length = 4
            default: return index
            }
            guard index + length <= bytes.count else { return index }
            for continuation in bytes[(index + 1)..<(index + length)] where continuation & 0xC0 != 0x80 {
                return index
            }
            index += length
        }
        return nil
    }
}

extension ConfigError {
    /// The most characters of a value echoed in an error.
    public static let echoLimit = 40

    /// A value as an error shows it: quoted, cut to ``echoLimit`` characters, control
    /// characters (newlines included) escaped, so one bad value is always one short line.
    public static func quote(_ value: some StringProtocol) -> String {
        var out = "'"
        var count = 0
        for scalar in value.unicodeScalars {
            if count == echoLimit {
                out += "…"
                break
            }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "'": out += "\\'"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
            count += 1
        }
        return out + "'"
    }
}
