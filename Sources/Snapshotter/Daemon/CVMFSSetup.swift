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
        // Starling's own client can verify the repository: servers to ask,
        // and the master keys that sign its whitelist.
        let clientUsable = !cvmfs.servers.isEmpty && cvmfs.keys.allSatisfy { FileManager.default.fileExists(atPath: $0) }
        let useHTTP: Bool
        switch cvmfs.mode {
        case .mounted: useHTTP = false
        case .http: useHTTP = true
        case .auto:
            let mountedAt = cvmfs.mountpoint
            let mounted = CVMFSLayerLocator.withTimeout(cvmfs.lookupTimeoutSeconds) {
                ((try? FileManager.default.contentsOfDirectory(atPath: mountedAt)) ?? []).isEmpty == false
            } ?? false
            useHTTP = !mounted && clientUsable
        }
        guard useHTTP else {
            let whiteouts = WhiteoutLayers(directory: configuration.root + "/cvmfs-whiteouts")
            // Where the client can verify the repository, a layer's
            // whiteouts come from one query of its catalog (fetched through
            // `proxies`) instead of a walk of the mounted layer's listings.
            // Until the repository is verified (or when it cannot be), the
            // walk answers at once: a Prepare never waits on the servers.
            let client = clientUsable
                ? CVMFSHTTPClient(configuration: cvmfs, cache: cache, directory: configuration.root + "/cvmfs-client",
                                  whenUnavailable: "whiteouts of mounted layers come from walks of their directories",
                                  logger: logger)
                : nil
            client?.start()
            var catalogWhiteouts: (@Sendable (String) throws -> [String])?
            if let client {
                catalogWhiteouts = { @Sendable (digest: String) throws -> [String] in
                    guard let repository = client.repository else {
                        throw CVMFSError.unreachable(client.unavailableReason)
                    }
                    return try repository.layerWhiteouts(digest)
                }
            }
            return (MountedCVMFSLayerSource(locator: CVMFSLayerLocator(configuration: cvmfs, whiteouts: whiteouts,
                                                                       catalogWhiteouts: catalogWhiteouts,
                                                                       logger: logger)), client)
        }
        let client = CVMFSHTTPClient(configuration: cvmfs, cache: cache, directory: configuration.root + "/cvmfs-client",
                                     whenUnavailable: "layers come from the registry", logger: logger)
        client.start()
        return (LazyCVMFSLayerSource(client: client, cache: cache, options: configuration.lazy.layer, logger: logger), client)
    }
}
