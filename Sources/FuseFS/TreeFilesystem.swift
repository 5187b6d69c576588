import Foundation
import Logging
import Synchronization

/// A read-only FUSE filesystem over a `FilesystemTree`: inode numbers are
/// handed out as the kernel meets nodes (the root is 1), so nothing is
/// indexed up front. A node the tree cannot produce (a catalog or object
/// that fails to fetch or verify) answers EIO for that request only.
final class TreeFilesystem: FuseRequestHandler {
    private let tree: any FilesystemTree
    private let options: FuseMountOptions
    private let logger: Logger
    private let table = Mutex(InodeTable())
    private let zeroMessageOpens = Mutex(ZeroMessageOpens())
    private let listings = Mutex<[UInt64: [FuseDirectoryEntry]]>([:])
    let initialized = DispatchSemaphore(value: 0)

    private struct InodeTable {
        var byKey: [String: UInt64] = [:]
        var nodes: [UInt64: TreeNode] = [:]
        var next: UInt64 = 2

        mutating func inode(for node: TreeNode) -> UInt64 {
            let key = node.inodeKey ?? node.key
            if let inode = byKey[key] {
                nodes[inode] = node
                return inode
            }
            let inode = next
            next += 1
            byKey[key] = inode
            nodes[inode] = node
            return inode
        }
    }

    init(tree: any FilesystemTree, options: FuseMountOptions, logger: Logger) throws {
        self.tree = tree
        self.options = options
        self.logger = logger
        let root = try tree.root()
        table.withLock { table in
            table.byKey[root.key] = 1
            table.nodes[1] = root
        }
    }

    func initialize(_ connection: inout FuseConnection) {
        let agreed = options.negotiate(&connection)
        zeroMessageOpens.withLock { $0 = agreed }
        initialized.signal()
    }

    func destroy() {
        logger.debug("tree filesystem destroyed", metadata: ["tree": "\(tree.treeName)"])
    }

    private func node(_ inode: UInt64) throws(FuseErrno) -> TreeNode {
        guard let node = table.withLock({ $0.nodes[inode] }) else { throw .noEntry }
        return node
    }

    private func attributes(of node: TreeNode) -> FuseAttributes {
        let inode = table.withLock { $0.inode(for: node) }
        let typeBits: UInt32
        var size = node.size
        switch node.kind {
        case .directory: typeBits = S_IFDIR; size = 4096
        case .regular: typeBits = S_IFREG
        case .symlink: typeBits = S_IFLNK; size = Int64(node.linkTarget?.utf8.count ?? 0)
        case .characterDevice: typeBits = S_IFCHR; size = 0
        case .blockDevice: typeBits = S_IFBLK; size = 0
        case .fifo: typeBits = S_IFIFO; size = 0
        case .socket: typeBits = S_IFSOCK; size = 0
        }
        return FuseAttributes(inode: inode, mode: typeBits | (node.permissions & 0o7777), linkCount: max(1, node.linkCount),
                              uid: node.uid, gid: node.gid, device: node.device, size: size,
                              modificationTime: node.modificationTime,
                              modificationNanoseconds: node.modificationNanoseconds)
    }

    private func failed(_ what: String, _ node: TreeNode, _ error: any Error) -> FuseErrno {
        logger.error("\(what) failed, answering EIO", metadata: ["tree": "\(tree.treeName)", "path": "\(node.key)",
                                                                "error": "\(error)"])
        return .io
    }

    func lookup(parent: UInt64, name: String) throws(FuseErrno) -> FuseEntry {
        let directory = try node(parent)
        guard directory.kind == .directory else { throw .notDirectory }
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else { throw .noEntry }
        let found: TreeNode?
        do { found = try tree.lookup(name, in: directory) } catch { throw failed("lookup of \(name)", directory, error) }
        guard let found else {
            return FuseEntry(attributes: nil, entryTimeout: options.negativeEntryTimeout, attributeTimeout: 0)
        }
        return FuseEntry(attributes: attributes(of: found), entryTimeout: options.entryTimeout,
                         attributeTimeout: options.attributeTimeout)
    }

    func attributes(of inode: UInt64) throws(FuseErrno) -> (FuseAttributes, timeout: Double) {
        (attributes(of: try node(inode)), options.attributeTimeout)
    }

    func readLink(_ inode: UInt64) throws(FuseErrno) -> String {
        let link = try node(inode)
        guard link.kind == .symlink, let target = link.linkTarget else { throw .invalid }
        return target
    }

    func open(_ inode: UInt64, flags: Int32) throws(FuseErrno) -> FuseOpenReply {
        if flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0 { throw .readOnly }
        let file = try node(inode)
        if file.kind == .directory { throw .isDirectory }
        // ENOSYS: zero-message open for the connection (see LayerFilesystem.open).
        if zeroMessageOpens.withLock({ $0.files }) { throw .notSupported }
        return FuseOpenReply(keepCache: options.keepCache)
    }

    func read(_ inode: UInt64, handle: UInt64, offset: Int64, size: Int) throws(FuseErrno) -> [UInt8] {
        guard offset >= 0 else { throw .invalid }
        let file = try node(inode)
        guard file.kind == .regular else { throw .invalid }
        guard offset < file.size, size > 0 else { return [] }
        do {
            return try tree.read(file, offset: offset, length: Int(min(Int64(size), file.size - offset)))
        } catch {
            throw failed("read", file, error)
        }
    }

    func release(_ inode: UInt64, handle: UInt64) {}

    func openDirectory(_ inode: UInt64) throws(FuseErrno) -> FuseOpenReply {
        let directory = try node(inode)
        guard directory.kind == .directory else { throw .notDirectory }
        if zeroMessageOpens.withLock({ $0.directories }) { throw .notSupported }
        return FuseOpenReply(keepCache: options.cacheDirectories, cacheDirectory: options.cacheDirectories)
    }

    func readDirectory(_ inode: UInt64, handle: UInt64, offset: Int64,
                       emit: (FuseDirectoryEntry) -> Bool) throws(FuseErrno) {
        guard offset >= 0 else { throw .invalid }
        var listing = offset > 0 ? listings.withLock({ $0[inode] }) : nil
        if listing == nil {
            listing = try makeListing(try node(inode))
        }
        let entries = listing!
        var position = Int(offset)
        while position < entries.count {
            guard emit(entries[position]) else {
                listings.withLock { table in
                    if table.count >= 16 { table.removeAll() }
                    table[inode] = entries
                }
                return
            }
            position += 1
        }
        listings.withLock { _ = $0.removeValue(forKey: inode) }
    }

    private func makeListing(_ directory: TreeNode) throws(FuseErrno) -> [FuseDirectoryEntry] {
        guard directory.kind == .directory else { throw .notDirectory }
        let children: [TreeNode]
        do { children = try tree.children(of: directory) } catch { throw failed("listing", directory, error) }
        var entries: [FuseDirectoryEntry] = []
        entries.reserveCapacity(children.count + 2)
        let own = attributes(of: directory)
        for (name, attributes) in [(".", own), ("..", own)] + children.map({ ($0.name, attributes(of: $0)) }) {
            entries.append(FuseDirectoryEntry(name: name, attributes: attributes, entryTimeout: options.entryTimeout,
                                              attributeTimeout: options.attributeTimeout,
                                              nextOffset: Int64(entries.count + 1)))
        }
        return entries
    }

    func releaseDirectory(_ inode: UInt64, handle: UInt64) {}

    func statistics() -> FuseFilesystemStatistics {
        FuseFilesystemStatistics(blockSize: 4096, totalBlocks: 0, totalInodes: UInt64(table.withLock { $0.nodes.count }),
                                 maximumNameLength: 255)
    }

    func extendedAttributeNames(of inode: UInt64) throws(FuseErrno) -> [String] {
        try node(inode).xattrs.map(\.name)
    }

    func extendedAttribute(of inode: UInt64, name: String) throws(FuseErrno) -> [UInt8] {
        guard let attribute = try node(inode).xattrs.first(where: { $0.name == name }) else { throw .noData }
        return attribute.value
    }
}
