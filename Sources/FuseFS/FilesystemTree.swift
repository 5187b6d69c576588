/// A read-only tree whose nodes are found when asked for: what FuseFS needs
/// to serve a namespace too large to index up front (a whole CVMFS
/// repository, whose nested catalogs load on demand).
///
/// FuseFS never parses a format: the tree's owner (the CVMFS module)
/// implements this and answers in its own terms. Nodes are identified by a
/// stable `key` (a path): equal keys are one inode for the kernel.
public protocol FilesystemTree: Sendable {
    /// Names the tree in logs and as the mount's source.
    var treeName: String { get }
    func root() throws -> TreeNode
    func lookup(_ name: String, in directory: TreeNode) throws -> TreeNode?
    /// A directory's nodes in the order a listing should show them.
    func children(of directory: TreeNode) throws -> [TreeNode]
    /// Bytes of a regular file in `offset..<offset+length` (clamped to its size by the caller).
    func read(_ file: TreeNode, offset: Int64, length: Int) throws -> [UInt8]
}

/// One node of a `FilesystemTree`, with everything `stat` shows.
public struct TreeNode: Sendable {
    public enum Kind: Sendable, Equatable { case directory, regular, symlink, characterDevice, blockDevice, fifo, socket }

    /// Stable identity (a path); also what `read` is given back.
    public var key: String
    /// Nodes with the same `inodeKey` share one inode (hard links); nil: the key.
    public var inodeKey: String?
    public var name: String
    public var kind: Kind
    /// Permission bits (the type comes from `kind`).
    public var permissions: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: Int64
    public var modificationTime: Int64
    public var modificationNanoseconds: Int32
    public var linkCount: UInt32
    /// `rdev` of a device, glibc's `makedev` encoding.
    public var device: UInt64
    public var linkTarget: String?
    public var xattrs: [(name: String, value: [UInt8])]

    public init(key: String, inodeKey: String? = nil, name: String, kind: Kind, permissions: UInt32, uid: UInt32,
                gid: UInt32, size: Int64, modificationTime: Int64, modificationNanoseconds: Int32 = 0,
                linkCount: UInt32 = 1, device: UInt64 = 0, linkTarget: String? = nil,
                xattrs: [(name: String, value: [UInt8])] = []) {
        self.key = key
        self.inodeKey = inodeKey
        self.name = name
        self.kind = kind
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
        self.size = size
        self.modificationTime = modificationTime
        self.modificationNanoseconds = modificationNanoseconds
        self.linkCount = linkCount
        self.device = device
        self.linkTarget = linkTarget
        self.xattrs = xattrs
    }
}
