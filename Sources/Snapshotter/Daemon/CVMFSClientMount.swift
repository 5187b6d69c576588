import CVMFSBackend
import Config
import Foundation
import FuseFS
import LazyLayer
import Logging
import Synchronization

/// Where CVMFS layers come from on this node, decided once at start-up from
/// `[cvmfs] mode`:
///
/// - `mounted`: the repository the CVMFS client (cvmfs2) mounted;
/// - `http`: Starling's own client mounts the whole repository at
///   `ROOT/cvmfs/<repository>` (nested catalogs load on demand, objects are
///   verified, kept in the chunk cache and fetched only when read) and
///   layers are used from there exactly as from a cvmfs2 mount; the
///   whiteouts of a layer come from one query of its catalog;
/// - `auto`: `mounted` when the repository is mounted, else `http` when
///   servers and master keys are configured (nothing is contacted otherwise).
///
/// A repository whose chain of trust does not hold stays unmounted, which
/// makes its layers fall back to the registry (the reason is logged).
final class CVMFSClientMount: Sendable {
    let mountpoint: String
    private let repository = Mutex<CVMFSRepository?>(nil)
    private let mount = Mutex<FuseMount?>(nil)
    private let stopped = Atomic<Bool>(false)
    private let logger: Logger

    /// The locator for `configuration` and, in HTTP mode, the client mount behind it.
    static func setup(_ configuration: DaemonConfiguration, cache: ChunkCache, logger: Logger)
        -> (CVMFSLayerLocator, CVMFSClientMount?) {
        var cvmfs = configuration.cvmfs
        let whiteouts = WhiteoutLayers(directory: configuration.root + "/cvmfs-whiteouts")
        let useHTTP: Bool
        switch cvmfs.mode {
        case .mounted: useHTTP = false
        case .http: useHTTP = true
        case .auto:
            let mountedAt = cvmfs.mountpoint
            let mounted = CVMFSLayerLocator.withTimeout(cvmfs.lookupTimeoutSeconds) {
                ((try? FileManager.default.contentsOfDirectory(atPath: mountedAt)) ?? []).isEmpty == false
            } ?? false
            useHTTP = !mounted && !cvmfs.servers.isEmpty && cvmfs.keys.allSatisfy { FileManager.default.fileExists(atPath: $0) }
        }
        guard useHTTP else { return (CVMFSLayerLocator(configuration: cvmfs, whiteouts: whiteouts, logger: logger), nil) }
        let mountpoint = configuration.root + "/cvmfs/" + cvmfs.repository
        let client = CVMFSClientMount(mountpoint: mountpoint, logger: logger)
        cvmfs.mountpointOverride = mountpoint
        client.start(configuration: cvmfs, cache: cache, directory: configuration.root + "/cvmfs-client",
                     fuse: configuration.fuse)
        return (CVMFSLayerLocator(configuration: cvmfs, whiteouts: whiteouts,
                                  catalogWhiteouts: { try client.layerWhiteouts($0) }, logger: logger), client)
    }

    private init(mountpoint: String, logger: Logger) {
        self.mountpoint = mountpoint
        self.logger = logger
    }

    /// The layer's whiteouts from its catalog (see `CVMFSRepository.layerWhiteouts`).
    func layerWhiteouts(_ digest: String) throws -> [String] {
        guard let repository = repository.withLock({ $0 }) else {
            throw CVMFSError.unreachable("the repository at \(mountpoint) is not mounted yet")
        }
        return try repository.layerWhiteouts(digest)
    }

    /// Verifies the repository and mounts it, on a thread of its own: a slow
    /// or broken repository never holds up the daemon (its layers fall back
    /// meanwhile). A failure is tried again after 1, 2, 4... up to 60 s.
    private func start(configuration: CVMFSConfiguration, cache: ChunkCache, directory: String, fuse: FuseMountOptions) {
        Thread.detachNewThread { [self] in
            // A mount left by a run that crashed answers ENOTCONN: detach it first.
            _ = umount2(mountpoint, Int32(MNT_DETACH))
            var delay = 1.0
            while !stopped.load(ordering: .relaxed)
                    && !tryMount(configuration: configuration, cache: cache, directory: directory, fuse: fuse) {
                Thread.sleep(forTimeInterval: delay)
                delay = min(60, delay * 2)
            }
        }
    }

    private func tryMount(configuration: CVMFSConfiguration, cache: ChunkCache, directory: String,
                          fuse: FuseMountOptions) -> Bool {
            do {
                try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
                let repository = try CVMFSRepository.make(configuration: configuration, chunks: cache,
                                                          directory: directory, logger: logger)
                let trusted = try repository.open()
                let mounted = try FuseMount.mount(tree: CVMFSTree(repository: repository), at: mountpoint,
                                                  options: CVMFSTree.mountOptions(fuse, for: trusted), logger: logger)
                let kept = mount.withLock { current -> Bool in
                    guard !stopped.load(ordering: .relaxed) else { return false }
                    current = mounted
                    return true
                }
                self.repository.withLock { $0 = repository }
                guard kept else { mounted.unmount(); return true }
                logger.notice("CVMFS repository mounted by Starling's own client", metadata: [
                    "repository": "\(repository.name)", "revision": "\(trusted.manifest.revision)",
                    "mountpoint": "\(mountpoint)"])
                return true
            } catch {
                logger.error("CVMFS repository unavailable: layers come from the registry", metadata: [
                    "repository": "\(configuration.repository)", "reason": "\(error)"])
                return false
            }
    }

    func unmount() {
        stopped.store(true, ordering: .relaxed)
        mount.withLock { $0?.unmount(); $0 = nil }
    }
}
