import Foundation
import LazyLayer
import Logging

extension CVMFSRepository {
    /// The HTTP client for `configuration`: its servers, proxies, keys and
    /// timeouts, objects in `chunks`, catalogs and aliases under `directory`.
    public static func make(configuration: CVMFSConfiguration, chunks: ChunkCache, directory: String,
                            logger: Logger = Logger(label: "starling.cvmfs"),
                            now: @escaping @Sendable () -> Date = { Date() }) throws -> CVMFSRepository {
        let fetcher = try ObjectFetcher(settings: ObjectFetcher.Settings(
            servers: configuration.serverURLs, proxies: try ProxyList(parsing: configuration.proxies),
            connectTimeoutSeconds: configuration.connectTimeoutSeconds,
            stallTimeoutSeconds: Int(configuration.stallTimeoutSeconds.rounded(.up))), logger: logger)
        let keys = try TrustChain.MasterKey.load(paths: configuration.keys)
        let repositoryDirectory = directory + "/" + configuration.repository
        return try CVMFSRepository(name: configuration.repository, fetcher: fetcher, masterKeys: keys,
                                   cache: ObjectCache(chunks: chunks, directory: repositoryDirectory),
                                   catalogDirectory: repositoryDirectory + "/catalogs", logger: logger, now: now)
    }
}
