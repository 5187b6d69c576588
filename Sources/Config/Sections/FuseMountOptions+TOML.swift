import FuseFS

extension FuseMountOptions {
    /// `[fuse]`: kernel cache timeouts and features, FUSE session tuning.
    public init(toml section: TOMLSection) throws(ConfigError) {
        self.init()
        try section.allowOnly(["entry_timeout", "attribute_timeout", "negative_entry_timeout", "keep_cache",
                               "cache_directories", "cache_symlinks", "readdirplus", "async_read", "parallel_dirops",
                               "max_read", "readahead", "max_background", "opaque_xattr_namespaces", "allow_other",
                               "max_threads", "max_idle_threads", "clone_fd", "survive_restarts"])
        func count(_ key: String) throws(ConfigError) -> UInt32? {
            try section.integer(key, range: 0...Int(UInt32.max)).map(UInt32.init)
        }
        entryTimeout = try section.number("entry_timeout") ?? entryTimeout
        attributeTimeout = try section.number("attribute_timeout") ?? attributeTimeout
        negativeEntryTimeout = try section.number("negative_entry_timeout") ?? negativeEntryTimeout
        keepCache = try section.bool("keep_cache") ?? keepCache
        cacheDirectories = try section.bool("cache_directories") ?? cacheDirectories
        cacheSymlinks = try section.bool("cache_symlinks") ?? cacheSymlinks
        readdirPlus = try section.bool("readdirplus") ?? readdirPlus
        asyncRead = try section.bool("async_read") ?? asyncRead
        parallelDirectoryOperations = try section.bool("parallel_dirops") ?? parallelDirectoryOperations
        maxRead = try count("max_read") ?? maxRead
        readahead = try count("readahead") ?? readahead
        maxBackground = try count("max_background") ?? maxBackground
        opaqueXattrNamespaces = try section.strings("opaque_xattr_namespaces") ?? opaqueXattrNamespaces
        allowOther = try section.bool("allow_other") ?? allowOther
        maxThreads = try count("max_threads") ?? maxThreads
        maxIdleThreads = try count("max_idle_threads") ?? maxIdleThreads
        cloneFileDescriptor = try section.bool("clone_fd") ?? cloneFileDescriptor
        surviveRestarts = try section.bool("survive_restarts") ?? surviveRestarts
    }
}
