import Basics
import Foundation
import Logging
import StargzReader
import Synchronization

/// A read-only FUSE filesystem that looks exactly like the unpacked layer:
/// metadata comes from the verified TOC index (answered at once, without
/// fetching), file contents from the `LayerContentSource` (fetched and
/// verified on demand). Whiteouts appear as overlayfs expects them (see
/// `LayerNamespace`), and a hidden `/.starling` directory holds the layer's
/// state as JSON.
final class LayerFilesystem: FuseRequestHandler {
    static let stateDirectoryName = ".starling"

    private let content: any LayerContentSource
    private let index: LayerIndex
    private let namespace: LayerNamespace
    private let inodes: InodeNumbering
    private let options: FuseMountOptions
    private let logger: Logger
    private let stateFileName: String
    /// False when the layer itself has a `/.starling` (the layer wins).
    private let stateDirectoryAvailable: Bool
    private let mountTime: Int64
    private let totalBytes: Int64
    private let handles = Mutex(HandleTable())
    /// The zero-message opens the kernel agreed to (see `open`, `openDirectory`).
    private let zeroMessageOpens = Mutex(ZeroMessageOpens())
    /// The state whose size the kernel was last told (lookup, getattr): a
    /// read without an open of its own (zero-message open) serves this one,
    /// so the bytes match the size the reader saw.
    private let announcedState = Mutex<[UInt8]?>(nil)
    private let reportedReadFailures = Mutex(Set<EntryID>())
    /// Signalled once the kernel connection is initialized.
    let initialized = DispatchSemaphore(value: 0)

    /// Open directory listings and state-file snapshots, by handle.
    private struct HandleTable {
        var next: UInt64 = 1
        var listings: [UInt64: [FuseDirectoryEntry]] = [:]
        var snapshots: [UInt64: [UInt8]] = [:]
        /// Large listings of directories opened without a handle, by inode,
        /// while the kernel pages through them (at most a few at a time).
        var pagedListings: [UInt64: [FuseDirectoryEntry]] = [:]

        mutating func allocate() -> UInt64 {
            defer { next += 1 }
            return next
        }
    }

    init(content: any LayerContentSource, options: FuseMountOptions, logger: Logger) {
        self.content = content
        self.index = content.index
        self.namespace = LayerNamespace(index: content.index)
        self.inodes = InodeNumbering(entryCount: content.index.entryCount)
        self.options = options
        self.logger = logger
        self.stateFileName = content.layerDigest + ".json"
        self.stateDirectoryAvailable = content.index.lookup(Self.stateDirectoryName, in: content.index.root) == nil
        self.mountTime = Int64(Date().timeIntervalSince1970)
        let index = content.index
        self.totalBytes = index.entryIDs.reduce(0) { $0 + (index.type(of: $1) == .regular ? index.size(of: $1) : 0) }
    }

    // MARK: connection

    func initialize(_ connection: inout FuseConnection) {
        let agreed = options.negotiate(&connection)
        zeroMessageOpens.withLock { $0 = agreed }
        initialized.signal()
    }

    func destroy() {
        logger.debug("layer filesystem destroyed", metadata: ["layer": "\(content.layerDigest)"])
    }

    // MARK: metadata

    func lookup(parent: UInt64, name: String) throws(FuseErrno) -> FuseEntry {
        switch inodes.target(of: parent) {
        case .entry(let directory):
            guard index.entry(directory).type == .directory else { throw .notDirectory }
            if directory == index.root && name == Self.stateDirectoryName && stateDirectoryAvailable {
                return FuseEntry(attributes: stateDirectoryAttributes(),
                                 entryTimeout: options.entryTimeout, attributeTimeout: options.attributeTimeout)
            }
            guard let node = namespace.lookup(name, in: directory) else { return negative() }
            return FuseEntry(attributes: attributes(of: node),
                             entryTimeout: options.entryTimeout, attributeTimeout: options.attributeTimeout)
        case .stateDirectory:
            guard name == stateFileName else { throw .noEntry }
            // The state changes: never let the kernel cache its size.
            return FuseEntry(attributes: stateFileAttributes(size: announceState().count),
                             entryTimeout: options.entryTimeout, attributeTimeout: 0)
        case .stateFile:
            throw .notDirectory
        case nil:
            throw .noEntry
        }
    }

    func attributes(of inode: UInt64) throws(FuseErrno) -> (FuseAttributes, timeout: Double) {
        switch inodes.target(of: inode) {
        case .entry(let id):
            let node: LayerNamespace.Node = namespace.isWhiteout(id) ? .whiteout(id) : .entry(id)
            return (attributes(of: node), options.attributeTimeout)
        case .stateDirectory:
            return (stateDirectoryAttributes(), options.attributeTimeout)
        case .stateFile:
            return (stateFileAttributes(size: announceState().count), 0)
        case nil:
            throw .noEntry
        }
    }

    func readLink(_ inode: UInt64) throws(FuseErrno) -> String {
        guard case .entry(let id) = inodes.target(of: inode) else { throw .invalid }
        let entry = index.entry(id)
        guard entry.type == .symlink, let target = entry.linkTarget else { throw .invalid }
        return target
    }

    func statistics() -> FuseFilesystemStatistics {
        FuseFilesystemStatistics(blockSize: 4096, totalBlocks: UInt64((totalBytes + 4095) / 4096),
                                 totalInodes: UInt64(index.entryCount), maximumNameLength: 255)
    }

    func extendedAttributeNames(of inode: UInt64) throws(FuseErrno) -> [String] {
        try extendedAttributes(of: inode).map(\.name)
    }

    func extendedAttribute(of inode: UInt64, name: String) throws(FuseErrno) -> [UInt8] {
        guard let attribute = try extendedAttributes(of: inode).first(where: { $0.name == name }) else {
            throw .noData
        }
        return attribute.value
    }

    // MARK: files

    func open(_ inode: UInt64, flags: Int32) throws(FuseErrno) -> FuseOpenReply {
        if flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0 { throw .readOnly }
        switch inodes.target(of: inode) {
        case .entry(let id):
            if index.entry(id).type == .directory { throw .isDirectory }
            // ENOSYS turns on zero-message open for the connection: this open
            // and all later ones succeed in the kernel, with `keep_cache`, and
            // send neither OPEN nor RELEASE (the mount is read-only, so the
            // kernel refuses writes itself).
            if zeroMessageOpens.withLock({ $0.files }) { throw .notSupported }
            return FuseOpenReply(keepCache: options.keepCache)
        case .stateFile:
            let snapshot = stateSnapshot()
            let handle = handles.withLock { table in
                let handle = table.allocate()
                table.snapshots[handle] = snapshot
                return handle
            }
            return FuseOpenReply(handle: handle, directIO: true)
        case .stateDirectory:
            throw .isDirectory
        case nil:
            throw .noEntry
        }
    }

    func read(_ inode: UInt64, handle: UInt64, offset: Int64, size: Int) throws(FuseErrno) -> [UInt8] {
        guard offset >= 0 else { throw .invalid }
        switch inodes.target(of: inode) {
        case .entry(let id):
            let entry = index.entry(id)
            guard entry.type == .regular, !namespace.isWhiteout(id) else { throw .invalid }
            guard offset < entry.size, size > 0 else { return [] }
            let length = Int(min(Int64(size), entry.size - offset))
            do {
                return try content.read(entry: id, offset: offset, length: length)
            } catch {
                reportReadFailure(id, error)
                throw .io
            }
        case .stateFile:
            let snapshot = handles.withLock { $0.snapshots[handle] } ?? announcedState.withLock { $0 } ?? stateSnapshot()
            guard offset < Int64(snapshot.count) else { return [] }
            let start = Int(offset)
            return Array(snapshot[start..<min(snapshot.count, start + size)])
        case .stateDirectory:
            throw .isDirectory
        case nil:
            throw .noEntry
        }
    }

    func release(_ inode: UInt64, handle: UInt64) {
        guard handle != 0 else { return }
        handles.withLock { _ = $0.snapshots.removeValue(forKey: handle) }
    }

    func contentChanges(_ inode: UInt64) -> Bool {
        if case .stateFile = inodes.target(of: inode) { return true }
        return false
    }

    // MARK: directories

    func openDirectory(_ inode: UInt64) throws(FuseErrno) -> FuseOpenReply {
        let listing: [FuseDirectoryEntry]
        let cacheable: Bool
        switch inodes.target(of: inode) {
        case .entry(let id):
            let entry = index.entry(id)
            guard entry.type == .directory else { throw .notDirectory }
            // ENOSYS turns on zero-message opendir for the connection; this
            // open and all later ones succeed in the kernel (handle 0, listing
            // cached), and `readDirectory` lists by inode.
            if zeroMessageOpens.withLock({ $0.directories }) { throw .notSupported }
            listing = directoryListing(of: id)
            cacheable = options.cacheDirectories
        case .stateDirectory:
            listing = stateDirectoryListing()
            cacheable = false
        case .stateFile:
            throw .notDirectory
        case nil:
            throw .noEntry
        }
        let handle = handles.withLock { table in
            let handle = table.allocate()
            table.listings[handle] = listing
            return handle
        }
        return FuseOpenReply(handle: handle, keepCache: cacheable, cacheDirectory: cacheable)
    }

    func readDirectory(_ inode: UInt64, handle: UInt64, offset: Int64,
                       emit: (FuseDirectoryEntry) -> Bool) throws(FuseErrno) {
        guard offset >= 0 else { throw .invalid }
        let listing: [FuseDirectoryEntry]
        if handle == 0, offset > 0, let paged = handles.withLock({ $0.pagedListings[inode] }) {
            listing = paged
        } else if handle == 0 {
            // Opened by the kernel alone (zero-message opendir): the layer is
            // immutable, so the listing is the same whenever it is built.
            // The kernel caches it, so this runs about once per directory.
            switch inodes.target(of: inode) {
            case .entry(let id):
                guard index.entry(id).type == .directory else { throw .notDirectory }
                listing = directoryListing(of: id)
            case .stateDirectory:
                listing = stateDirectoryListing()
            case .stateFile:
                throw .notDirectory
            case nil:
                throw .noEntry
            }
        } else {
            guard let opened = handles.withLock({ $0.listings[handle] }) else { throw .invalid }
            listing = opened
        }
        var position = Int(offset)
        while position < listing.count {
            guard emit(listing[position]) else {
                // The reply is full: the kernel will ask for the rest. Keep a
                // big listing for that instead of building it once per page.
                if handle == 0 && listing.count > 64 {
                    handles.withLock { table in
                        if table.pagedListings.count >= 16 { table.pagedListings.removeAll() }
                        table.pagedListings[inode] = listing
                    }
                }
                return
            }
            position += 1
        }
        if handle == 0 { handles.withLock { _ = $0.pagedListings.removeValue(forKey: inode) } }
    }

    func releaseDirectory(_ inode: UInt64, handle: UInt64) {
        handles.withLock { _ = $0.listings.removeValue(forKey: handle) }
    }

    // MARK: helpers

    private func negative() -> FuseEntry {
        FuseEntry(attributes: nil, entryTimeout: options.negativeEntryTimeout, attributeTimeout: 0)
    }

    private func attributes(of node: LayerNamespace.Node) -> FuseAttributes {
        let entry = index.entry(node.id)
        let inode = inodes.inode(of: node.id)
        if case .whiteout = node {
            // What `containerd`'s overlay applier makes of `.wh.NAME`: mknod(S_IFCHR, 0), chown.
            return FuseAttributes(inode: inode, mode: S_IFCHR, linkCount: 1, uid: entry.uid, gid: entry.gid,
                                  device: 0, size: 0, modificationTime: entry.modTime)
        }
        let typeBits: UInt32
        var size = entry.size
        var device: UInt64 = 0
        switch entry.type {
        case .directory: typeBits = S_IFDIR; size = 4096
        case .regular: typeBits = S_IFREG
        case .symlink: typeBits = S_IFLNK; size = Int64(entry.linkTarget?.utf8.count ?? 0)
        case .charDevice: typeBits = S_IFCHR; size = 0; device = DeviceNumber.make(major: entry.devMajor, minor: entry.devMinor)
        case .blockDevice: typeBits = S_IFBLK; size = 0; device = DeviceNumber.make(major: entry.devMajor, minor: entry.devMinor)
        case .fifo: typeBits = S_IFIFO; size = 0
        }
        return FuseAttributes(inode: inode, mode: typeBits | (entry.mode & 0o7777), linkCount: max(1, entry.nlink),
                              uid: entry.uid, gid: entry.gid, device: device, size: size,
                              modificationTime: entry.modTime)
    }

    private func extendedAttributes(of inode: UInt64) throws(FuseErrno) -> [Xattr] {
        switch inodes.target(of: inode) {
        case .entry(let id):
            if namespace.isWhiteout(id) { return [] }
            let entry = index.entry(id)
            var result = entry.xattrs
            if entry.type == .directory && namespace.isOpaque(id) {
                for name in options.opaqueXattrNames where !result.contains(where: { $0.name == name }) {
                    result.append(Xattr(name: name, value: Array("y".utf8)))
                }
            }
            return result
        case .stateDirectory, .stateFile:
            return []
        case nil:
            throw .noEntry
        }
    }

    private func directoryListing(of directory: EntryID) -> [FuseDirectoryEntry] {
        let visible = namespace.listing(of: directory)
        var listing: [FuseDirectoryEntry] = []
        listing.reserveCapacity(visible.count + 2)
        let own = attributes(of: .entry(directory))
        let parent = attributes(of: .entry(index.entry(directory).parent))
        listing.append(directoryEntry(".", own, position: 0))
        listing.append(directoryEntry("..", parent, position: 1))
        for (name, node) in visible {
            listing.append(directoryEntry(name, attributes(of: node), position: listing.count))
        }
        return listing
    }

    private func stateDirectoryListing() -> [FuseDirectoryEntry] {
        [directoryEntry(".", stateDirectoryAttributes(), position: 0),
         directoryEntry("..", attributes(of: .entry(index.root)), position: 1),
         FuseDirectoryEntry(name: stateFileName, attributes: stateFileAttributes(size: stateSnapshot().count),
                            entryTimeout: options.entryTimeout, attributeTimeout: 0, nextOffset: 3)]
    }

    private func directoryEntry(_ name: String, _ attributes: FuseAttributes, position: Int) -> FuseDirectoryEntry {
        FuseDirectoryEntry(name: name, attributes: attributes, entryTimeout: options.entryTimeout,
                           attributeTimeout: options.attributeTimeout, nextOffset: Int64(position + 1))
    }

    private func stateDirectoryAttributes() -> FuseAttributes {
        FuseAttributes(inode: inodes.stateDirectory, mode: S_IFDIR | 0o555, linkCount: 2, uid: 0, gid: 0,
                       device: 0, size: 4096, modificationTime: mountTime)
    }

    private func stateFileAttributes(size: Int) -> FuseAttributes {
        FuseAttributes(inode: inodes.stateFile, mode: S_IFREG | 0o444, linkCount: 1, uid: 0, gid: 0,
                       device: 0, size: Int64(size), modificationTime: Int64(Date().timeIntervalSince1970))
    }

    /// The current state JSON; a failure to produce it is itself reported as JSON.
    /// A fresh state, remembered as the one whose size the kernel now knows.
    private func announceState() -> [UInt8] {
        let snapshot = stateSnapshot()
        announcedState.withLock { $0 = snapshot }
        return snapshot
    }

    private func stateSnapshot() -> [UInt8] {
        do {
            return try content.stateJSON()
        } catch {
            return Array("{\"error\": \(jsonString("\(error)"))}\n".utf8)
        }
    }

    private func jsonString(_ text: String) -> String {
        let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// Logs the first read failure of each file; later ones only at debug
    /// level (the data path retries on the next read, so failures repeat).
    private func reportReadFailure(_ id: EntryID, _ error: any Error) {
        let first = reportedReadFailures.withLock { $0.insert(id).inserted }
        let metadata: Logger.Metadata = ["layer": "\(content.layerDigest)", "path": "\(index.path(of: id))",
                                         "error": "\(error)"]
        if first {
            logger.error("read failed, answering EIO", metadata: metadata)
        } else {
            logger.debug("read failed again, answering EIO", metadata: metadata)
        }
    }
}
