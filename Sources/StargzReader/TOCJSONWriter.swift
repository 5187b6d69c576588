import Basics

/// Serialises TOC entries the way the reference writer does (Go's
/// `json.MarshalIndent(toc, "", "\t")`): same field order, same omission of
/// empty fields, same string escaping, so TOCs we write look like theirs.
enum TOCJSONWriter {
    static func encode(version: Int, entries: [TOCEntryRecord]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entries.count * 300 + 64)
        out += Array("{\n\t\"version\": \(version),\n\t\"entries\": [".utf8)
        for (i, e) in entries.enumerated() {
            out += Array((i == 0 ? "\n\t\t{" : ",\n\t\t{").utf8)
            var first = true
            func key(_ k: String) {
                out += Array(((first ? "\n" : ",\n") + "\t\t\t\"" + k + "\": ").utf8)
                first = false
            }
            func string(_ k: String, _ v: String, always: Bool = false) {
                guard always || !v.isEmpty else { return }
                key(k)
                appendQuoted(v, to: &out)
            }
            func int(_ k: String, _ v: Int64, always: Bool = false) {
                guard always || v != 0 else { return }
                key(k)
                out += Array(String(v).utf8)
            }
            string("name", e.name, always: true)
            string("type", e.type, always: true)
            int("size", e.size)
            string("modtime", e.modTime)
            string("linkName", e.linkName)
            int("mode", e.mode)
            int("uid", e.uid)
            int("gid", e.gid)
            string("userName", e.userName)
            string("groupName", e.groupName)
            int("offset", e.offset)
            int("innerOffset", e.innerOffset)
            int("devMajor", e.devMajor)
            int("devMinor", e.devMinor)
            if !e.xattrs.isEmpty {
                key("xattrs")
                out += Array("{".utf8)
                for (j, x) in e.xattrs.sorted(by: { $0.name < $1.name }).enumerated() {
                    out += Array(((j == 0 ? "\n" : ",\n") + "\t\t\t\t").utf8)
                    appendQuoted(x.name, to: &out)
                    out += Array(": ".utf8)
                    appendQuoted(Base64.encode(x.value), to: &out)
                }
                out += Array("\n\t\t\t}".utf8)
            }
            string("digest", e.digest)
            int("chunkOffset", e.chunkOffset)
            int("chunkSize", e.chunkSize)
            string("chunkDigest", e.chunkDigest)
            out += Array("\n\t\t}".utf8)
        }
        out += Array((entries.isEmpty ? "]\n}" : "\n\t]\n}").utf8)
        return out
    }

    /// Go's JSON string escaping (HTML-safe: <, >, & and U+2028/9 escaped).
    static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += [92, 34]
            case "\\": out += [92, 92]
            case "\n": out += [92, UInt8(ascii: "n")]
            case "\r": out += [92, UInt8(ascii: "r")]
            case "\t": out += [92, UInt8(ascii: "t")]
            case "<", ">", "&", "\u{2028}", "\u{2029}":
                let v = scalar.value
                out += [92, UInt8(ascii: "u"), Hex.digit(v >> 12), Hex.digit(v >> 8), Hex.digit(v >> 4), Hex.digit(v)]
            default:
                if scalar.value < 0x20 {
                    let v = scalar.value
                    out += [92, UInt8(ascii: "u"), 48, 48, Hex.digit(v >> 4), Hex.digit(v)]
                } else {
                    out += Array(String(scalar).utf8)
                }
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
