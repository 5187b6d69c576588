/// How a `FuseSession` mounts and runs.
struct FuseSessionConfiguration: Sendable {
    /// Comma-joined into one `-o` argument for `fuse_session_new`
    /// (`ro`, `allow_other`, `default_permissions`, `fsname=...`, `max_read=...`).
    var mountOptions: [String]
    /// One cloned /dev/fuse descriptor per worker thread, so replies and
    /// requests of different threads do not contend on one file.
    var cloneFileDescriptor: Bool
    /// Idle workers kept around instead of being torn down.
    var maxIdleThreads: UInt32
    /// Upper bound on concurrent workers (each may block on a network fetch).
    var maxThreads: UInt32
    /// Read every request from the connection's own descriptor (no clones)
    /// when the kernel can resend unanswered requests: then a request this
    /// process read but never answered (it stopped or crashed) stays with
    /// the connection, and a successor that adopts it has it resent. Cloned
    /// descriptors would take such requests with them (ECONNABORTED).
    var keepRequestsForSuccessor: Bool = false
}
