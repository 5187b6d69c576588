import StargzReader

/// Maps index entries and the few synthetic files to stable inode numbers.
///
/// Entry ids are dense with the root at 0, so `id + 1` puts the root at
/// `FUSE_ROOT_ID` (1) and gives hard links (one entry) one inode. The state
/// directory and its file take the two numbers after the last entry.
struct InodeNumbering: Sendable {
    let entryCount: Int

    /// What an inode number refers to.
    enum Target: Equatable, Sendable {
        case entry(EntryID)
        case stateDirectory
        case stateFile
    }

    var stateDirectory: UInt64 { UInt64(entryCount) + 1 }
    var stateFile: UInt64 { UInt64(entryCount) + 2 }

    func inode(of id: EntryID) -> UInt64 { UInt64(id.rawValue) + 1 }

    func target(of inode: UInt64) -> Target? {
        if inode >= 1 && inode <= UInt64(entryCount) {
            return .entry(EntryID(rawValue: UInt32(inode - 1)))
        }
        if inode == stateDirectory { return .stateDirectory }
        if inode == stateFile { return .stateFile }
        return nil
    }
}
