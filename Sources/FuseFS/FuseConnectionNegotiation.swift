/// Which opens the kernel may do without asking the filesystem, as agreed
/// when the connection started.
struct ZeroMessageOpens: Sendable, Equatable {
    /// OPENDIR answers ENOSYS; listings are then served by inode.
    var directories = false
    /// OPEN of a layer's file answers ENOSYS; reads then come with handle 0.
    var files = false
}

extension FuseMountOptions {
    /// Asks the kernel for the features these options turn on; returns
    /// which zero-message opens were agreed.
    func negotiate(_ connection: inout FuseConnection) -> ZeroMessageOpens {
        func set(_ capability: FuseCapabilities, _ enabled: Bool) {
            if enabled { connection.wanted.insert(capability) } else { connection.wanted.remove(capability) }
        }
        set(.asyncRead, asyncRead)
        set(.readdirPlus, readdirPlus)
        // Always READDIRPLUS (not the adaptive mode): one listing answers every
        // later stat of the directory's children.
        set(.readdirPlusAuto, false)
        set(.parallelDirectoryOperations, parallelDirectoryOperations)
        set(.cacheSymlinks, cacheSymlinks)
        // With cached listings, a directory open needs nothing from us: let
        // the kernel open directories without a round trip (a `find` over a
        // root filesystem otherwise pays an OPENDIR and a RELEASEDIR per
        // directory, about as much as the rest of the walk).
        let zeroMessage = cacheDirectories && connection.capable.contains(.noOpendirSupport)
        set(.noOpendirSupport, zeroMessage)
        // Likewise for files: an open answers nothing but `keep_cache`, and a
        // `find | xargs cat` over a root paid an OPEN and a RELEASE per file
        // beside its one READ. Without `keepCache` every open must reach us
        // (the kernel then drops the file's pages), so the kernel must ask.
        let zeroMessageFiles = keepCache && connection.capable.contains(.noOpenSupport)
        // The content never changes under a name: never drop cached pages because of attributes.
        set(.autoInvalidateData, false)
        connection.maxWrite = maxRead
        connection.maxReadahead = readahead
        connection.maxBackground = maxBackground
        connection.congestionThreshold = max(1, maxBackground * 3 / 4)
        return ZeroMessageOpens(directories: zeroMessage, files: zeroMessageFiles)
    }
}
