import CVMFSBackend
import Config
import Foundation
import LazyLayer
import Logging

/// Where CVMFS layers come from on this node, decided once at start-up from
/// `[cvmfs] mode`:
///
/// - `mounted`: the repository the CVMFS client (cvmfs2) mounted; layers
///   are used in place with their whiteouts applied (`MountedCVMFSLayerSource`);
/// - `http`: Starling's own client reads the repository over HTTP
///   (`CVMFSHTTPClient`) and each layer is served lazily through FuseFS
///   like an eStargz layer, its catalog the table of contents
///   (`LazyCVMFSLayerSource`); no repository is mounted;
/// - `auto`: `mounted` when the repository is mounted, else `http` when
///   servers and master keys are configured (nothing is contacted otherwise).
enum CVMFSSetup {
    /// The layer source for `configuration`, and in HTTP mode the client behind it.
    static func source(_ configuration: DaemonConfiguration, cache: ChunkCache, logger: Logger)
        -> (any LayerSource, CVMFSHTTPClient?) {
        let cvmfs = configuration.cvmfs
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
        guard useHTTP else {
            let whiteouts = WhiteoutLayers(directory: configuration.root + "/cvmfs-whiteouts")
            return (MountedCVMFSLayerSource(locator: CVMFSLayerLocator(configuration: cvmfs, whiteouts: whiteouts,
                                                                       logger: logger)), nil)
        }
        let client = CVMFSHTTPClient(configuration: cvmfs, cache: cache, directory: configuration.root + "/cvmfs-client",
                                     logger: logger)
        client.start()
        return (LazyCVMFSLayerSource(client: client, cache: cache, options: configuration.lazy.layer, logger: logger), client)
    }
}
