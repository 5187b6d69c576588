import StargzReader

/// The names a mounted layer shows, derived from its TOC index the way
/// overlayfs expects an unpacked OCI layer to look:
///
/// - `.wh.NAME` is shown as `NAME`, a 0/0 character device (an overlayfs
///   whiteout), unless the layer also has a real `NAME` in that directory.
/// - `.wh..wh..opq` is hidden; its directory is *opaque* (reported through
///   the `overlay.opaque` xattr by `LayerFilesystem`).
/// - The eStargz prefetch landmarks at the root are format artifacts, not
///   files of the image, and are hidden (as the reference snapshotter does).
/// - Any `.wh.`-prefixed name is never reachable under its raw name.
///
/// The index is immutable, so this view is a pure function of it.
struct LayerNamespace: Sendable {
    static let hiddenRootNames: Set<String> = [".prefetch.landmark", ".no.prefetch.landmark"]

    /// What a visible name refers to.
    enum Node: Sendable, Equatable {
        /// An ordinary index entry, shown as itself.
        case entry(EntryID)
        /// A whiteout: the index entry is the `.wh.NAME` file, shown as a 0/0 char device.
        case whiteout(EntryID)

        var id: EntryID {
            switch self {
            case .entry(let id), .whiteout(let id): return id
            }
        }
    }

    let index: LayerIndex

    /// Resolves a visible name in directory `parent`.
    func lookup(_ name: String, in parent: EntryID) -> Node? {
        guard isPresentable(name), !isHidden(name, in: parent) else { return nil }
        if let id = index.lookup(name, in: parent) { return .entry(id) }
        if let id = index.lookup(WhiteoutName.prefix + name, in: parent) { return .whiteout(id) }
        return nil
    }

    /// All visible names of a directory with what they refer to, in the
    /// layer's own order (the order of its TOC, i.e. of the tar the layer
    /// was made from), not sorted by name: a program that reads every file
    /// of a tree (`find`, a copy, a build) then reads the blob front to
    /// back, and read-ahead serves it in large sequential requests. (ext4
    /// does not sort listings either; the index keeps children sorted by
    /// name for lookups, and entry ids are in TOC order.)
    func listing(of directory: EntryID) -> [(name: String, node: Node)] {
        let children = index.children(of: directory)
        var realNames: Set<String> = []
        for child in children where !child.name.hasPrefix(WhiteoutName.prefix) {
            realNames.insert(child.name)
        }
        var result: [(name: String, node: Node)] = []
        result.reserveCapacity(children.count)
        for child in children {
            if child.name.hasPrefix(WhiteoutName.prefix) {
                guard case .hides(let target) = WhiteoutName(child.name), !realNames.contains(target) else { continue }
                result.append((target, .whiteout(child.id)))
            } else if isPresentable(child.name), !isHidden(child.name, in: directory) {
                result.append((child.name, .entry(child.id)))
            }
        }
        result.sort { $0.node.id.rawValue < $1.node.id.rawValue }
        return result
    }

    /// Whether a directory carries `.wh..wh..opq` (hides lower layers' content).
    func isOpaque(_ directory: EntryID) -> Bool {
        index.lookup(WhiteoutName.opaqueMarker, in: directory) != nil
    }

    /// Whether an index entry is presented as a whiteout (its name is `.wh.X`).
    func isWhiteout(_ id: EntryID) -> Bool {
        if case .hides = WhiteoutName(index.entry(id).name) { return true }
        return false
    }

    private func isHidden(_ name: String, in parent: EntryID) -> Bool {
        if name.hasPrefix(WhiteoutName.prefix) { return true }
        return parent == index.root && Self.hiddenRootNames.contains(name)
    }

    /// Names a directory entry can carry (see `LayerPath.isPlainName`).
    private func isPresentable(_ name: String) -> Bool {
        LayerPath.isPlainName(name)
    }
}
