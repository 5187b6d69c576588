/// The builder's hash lookups while the TOC is read (gone once the index is
/// built; the index itself finds names by binary search in sorted dirents).
///
/// Why not `[String: UInt32]` keyed by full path, as before: that kept a
/// `String` per entry (allocated, retained, hashed through the `String`
/// machinery, freed one by one at the end) and hashed each full path two or
/// three times: most of the index build time. Here a table is a flat array
/// of 8-byte slots over ids whose keys live in the builder's byte buffers;
/// the caller says how to compare a key. Hashing is Swift's `Hasher`, seeded
/// randomly per process, so a crafted TOC cannot force collisions.
struct HashSlots {
    /// Open addressing, linear probing, at most 3/4 full. A slot is `empty`,
    /// or the key's 32-bit hash (compared before the key itself; its low
    /// bits also pick the home slot) above the id.
    private var slots: [UInt64]
    private var count = 0
    private static let empty = UInt64.max

    init(expected: Int) {
        var capacity = 64
        while capacity * 3 < expected * 4 { capacity *= 2 }
        slots = [UInt64](repeating: Self.empty, count: capacity)
    }

    /// The hash of a name in a directory, or of a path (`parent` 0).
    static func hash(parent: UInt32, name: Substring) -> UInt32 {
        var hasher = Hasher()
        hasher.combine(parent)
        name.utf8.span.withUnsafeBytes { hasher.combine(bytes: $0) }
        return UInt32(truncatingIfNeeded: hasher.finalize())
    }

    /// The id stored under `hash` whose key `matches`.
    func find(hash: UInt32, where matches: (UInt32) -> Bool) -> UInt32? {
        let mask = slots.count - 1
        var i = Int(hash) & mask
        while true {
            let slot = slots[i]
            if slot == Self.empty { return nil }
            if UInt32(truncatingIfNeeded: slot >> 32) == hash {
                let id = UInt32(truncatingIfNeeded: slot)
                if matches(id) { return id }
            }
            i = (i + 1) & mask
        }
    }

    /// Adds an id whose key `find` did not find.
    mutating func insert(hash: UInt32, id: UInt32) {
        if (count + 1) * 4 > slots.count * 3 {
            let old = slots
            slots = [UInt64](repeating: Self.empty, count: old.count * 2)
            for slot in old where slot != Self.empty { place(slot) }
        }
        place(UInt64(hash) << 32 | UInt64(id))
        count += 1
    }

    private mutating func place(_ slot: UInt64) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: slot >> 32) & mask
        while slots[i] != Self.empty { i = (i + 1) & mask }
        slots[i] = slot
    }
}
