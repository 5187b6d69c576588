extension FuseMountOptions {
    /// Asks the kernel for the features these options turn on; returns
    /// whether zero-message opendir was agreed (OPENDIR must then answer
    /// ENOSYS and listings are served by inode).
    func negotiate(_ connection: inout FuseConnection) -> Bool {
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
        // The content never changes under a name: never drop cached pages because of attributes.
        set(.autoInvalidateData, false)
        connection.maxWrite = maxRead
        connection.maxReadahead = readahead
        connection.maxBackground = maxBackground
        connection.congestionThreshold = max(1, maxBackground * 3 / 4)
        return zeroMessage
    }
}
