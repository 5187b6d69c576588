#if canImport(Glibc)
import Glibc
#endif

/// glibc malloc's settings for the long-running daemon.
///
/// glibc gives threads that allocate at the same time arenas of their own
/// (up to 8 per CPU), and what is freed in an arena stays with it; and it
/// raises its mmap threshold to the size of every large block freed (up to
/// 32 MiB), after which the data path's 128 KiB-16 MiB request and chunk
/// buffers come from those arenas too instead of from mmap. The data path
/// allocates exactly such buffers on many threads (FUSE workers,
/// read-ahead, prefetch, background fetch), so the daemon kept the peak of
/// every arena. Fewer arenas and a fixed threshold hand a large buffer back
/// to the kernel when it is freed. glibc's own environment variables
/// (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`)
/// win over these.
public enum MallocTuning {
    public struct Settings: Sendable, Equatable {
        /// Arenas at most; 0 leaves glibc's default (8 per CPU).
        public var arenas: Int
        /// Blocks at least this large are mmapped, and unmapped when freed;
        /// 0 leaves glibc's moving threshold.
        public var mmapThreshold: Int

        public init(arenas: Int = 2, mmapThreshold: Int = 128 << 10) {
            self.arenas = max(0, arenas)
            self.mmapThreshold = max(0, mmapThreshold)
        }
    }

    /// Applies `settings`; call it before the daemon starts its threads.
    public static func apply(_ settings: Settings) {
        #if canImport(Glibc)
        guard let mallopt else { return }
        if settings.arenas > 0, getenv("MALLOC_ARENA_MAX") == nil {
            _ = mallopt(-8 /* M_ARENA_MAX */, Int32(clamping: settings.arenas))
        }
        if settings.mmapThreshold > 0, getenv("MALLOC_MMAP_THRESHOLD_") == nil {
            // Setting it also stops glibc from moving the trim threshold
            // (128 KiB): free memory at the top of a heap beyond it goes back.
            _ = mallopt(-3 /* M_MMAP_THRESHOLD */, Int32(clamping: settings.mmapThreshold))
        }
        #endif
    }

    /// Gives free heap memory back to the kernel (`malloc_trim(0)`).
    public static func trim() {
        #if canImport(Glibc)
        _ = mallocTrim?(0)
        #endif
    }

    #if canImport(Glibc)
    // <malloc.h> is not part of Swift's Glibc module: looked up at run time.
    private static let mallopt: (@convention(c) (Int32, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
    }()
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()
    #endif
}
