import Foundation
import GRPCShim

/// Disk space and inodes used below a directory, counting hard-linked
/// files once, like containerd's `fs.DiskUsage`. Does not cross into other
/// file systems (a FUSE or bind mount below the directory is not counted).
func diskUsage(of directory: String) -> SnapshotUsage {
    var root = stat()
    guard lstat(directory, &root) == 0 else { return SnapshotUsage(size: 0, inodes: 0) }
    var seen = Set<UInt64>()
    var size: Int64 = 0
    var pending = [directory]
    func account(_ info: stat) {
        guard seen.insert(UInt64(info.st_ino)).inserted else { return }
        size += Int64(info.st_blocks) * 512
    }
    account(root)
    while let current = pending.popLast() {
        guard let stream = opendir(current) else { continue }
        defer { closedir(stream) }
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            let path = current + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0, info.st_dev == root.st_dev else { continue }
            account(info)
            if (info.st_mode & S_IFMT) == S_IFDIR { pending.append(path) }
        }
    }
    return SnapshotUsage(size: size, inodes: Int64(seen.count))
}
