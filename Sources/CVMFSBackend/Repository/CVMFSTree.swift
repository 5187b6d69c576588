import FuseFS

/// A whole repository as a `FilesystemTree` for FuseFS: nodes come from the
/// catalogs as the kernel asks for them, so a mount of a repository with
/// millions of files loads only the nested catalogs that are walked into.
public struct CVMFSTree: FilesystemTree {
    public let repository: CVMFSRepository

    public init(repository: CVMFSRepository) {
        self.repository = repository
    }

    public var treeName: String { repository.name }

    /// `base` for a repository mount: never handed over across restarts, and
    /// the kernel asks again after the manifest's TTL (a repository changes
    /// with each revision).
    public static func mountOptions(_ base: FuseMountOptions, for trusted: TrustedManifest) -> FuseMountOptions {
        var options = base
        options.surviveRestarts = false
        let ttl = Double(max(1, trusted.manifest.ttlSeconds))
        options.entryTimeout = ttl
        options.attributeTimeout = ttl
        options.negativeEntryTimeout = ttl
        return options
    }

    public func root() throws -> TreeNode {
        guard let entry = try repository.entry(at: "") else {
            throw CVMFSError.malformed("the root catalog of \(repository.name) has no root entry")
        }
        return Self.node(entry)
    }

    public func lookup(_ name: String, in directory: TreeNode) throws -> TreeNode? {
        try repository.entry(at: directory.key + "/" + name).map(Self.node)
    }

    public func children(of directory: TreeNode) throws -> [TreeNode] {
        try repository.children(of: directory.key).map(Self.node)
    }

    public func read(_ file: TreeNode, offset: Int64, length: Int) throws -> [UInt8] {
        guard let entry = try repository.entry(at: file.key) else { throw CVMFSError.notFound(file.key) }
        return try repository.read(entry, offset: offset, length: length)
    }

    /// What `stat` shows for a catalog entry.
    static func node(_ entry: CatalogEntry) -> TreeNode {
        let kind: TreeNode.Kind
        switch entry.kind {
        case .directory: kind = .directory
        case .regular: kind = .regular
        case .symlink: kind = .symlink
        case .special:
            switch entry.mode & 0o170000 {
            case 0o020000: kind = .characterDevice
            case 0o060000: kind = .blockDevice
            case 0o140000: kind = .socket
            default: kind = .fifo
            }
        }
        let directory = String(entry.path[..<(entry.path.lastIndex(of: "/") ?? entry.path.startIndex)])
        // Hard links: CVMFS numbers link groups per directory.
        let inodeKey = entry.linkGroup > 0 ? directory + "\u{0}" + String(entry.linkGroup) : nil
        return TreeNode(key: entry.path, inodeKey: inodeKey, name: entry.name, kind: kind,
                        permissions: entry.mode & 0o7777, uid: entry.uid, gid: entry.gid,
                        size: entry.kind == .special ? 0 : entry.size, modificationTime: entry.mtime,
                        modificationNanoseconds: entry.mtimeNanoseconds,
                        linkCount: entry.kind == .directory ? max(2, entry.linkCount) : max(1, entry.linkCount),
                        device: entry.deviceNumber,
                        linkTarget: entry.kind == .symlink ? SymlinkTarget.resolve(entry.symlink) : nil,
                        xattrs: entry.xattrs)
    }
}
