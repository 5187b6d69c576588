import Foundation

/// Finds the whiteout files (`.wh.*`) of an unpacked layer directory from
/// directory listings alone: `readdir` with its entry types, no `stat` of
/// any file, so on a CVMFS mount only catalogs are read, never file data.
enum DirectoryWalk {
    /// Paths relative to `root` (`etc/.wh.gone`), sorted.
    static func whiteouts(under root: String) throws(CVMFSError) -> [String] {
        var result: [String] = []
        var pending = [""]
        while let relative = pending.popLast() {
            let path = relative.isEmpty ? root : root + "/" + relative
            guard let directory = opendir(path) else {
                throw .unreachable("cannot list \(path): \(String(cString: strerror(errno)))")
            }
            defer { closedir(directory) }
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
                }
                if name == "." || name == ".." { continue }
                let child = relative.isEmpty ? name : relative + "/" + name
                if name.hasPrefix(".wh.") {
                    result.append(child)
                } else if entry.pointee.d_type == UInt8(DT_DIR) {
                    pending.append(child)
                } else if entry.pointee.d_type == UInt8(DT_UNKNOWN) {
                    var info = stat()
                    if lstat(path + "/" + name, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { pending.append(child) }
                }
            }
        }
        return result.sorted()
    }
}
