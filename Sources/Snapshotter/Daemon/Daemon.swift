import CVMFSBackend
import Config
import Dispatch
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCShim
import LazyLayer
import Logging
import Registry
import Synchronization

/// `starling serve`: opens the store, remounts (or takes over) the lazy
/// layers it holds, serves containerd's snapshots API on the unix socket,
/// tells systemd it is ready, and on SIGTERM/SIGINT stops serving and
/// unmounts its layers, or, under systemd, leaves them to the next run.
struct Daemon {
    let configuration: DaemonConfiguration
    let logger: Logger

    func run() async throws {
        guard geteuid() == 0 else {
            throw DaemonError("starling serve must run as root (it mounts overlay and FUSE file systems)")
        }
        // Descriptors systemd kept for us (live FUSE connections of the
        // previous run): taken first, so no child process inherits them.
        let inherited = FileDescriptorStore.takeInherited()
        let started = Date()
        let paths = SnapshotPaths(root: configuration.root)
        try paths.create()
        let store: SnapshotStore
        do {
            store = try SnapshotStore(path: paths.metadata)
        } catch {
            throw DaemonError("cannot open the metadata store \(paths.metadata): \(error)")
        }
        let events = SnapshotEvents()
        let handover = MountHandover(paths: paths, enabled: configuration.fuse.surviveRestarts && SystemdNotifier.isAvailable,
                                     inherited: inherited, logger: logger)
        // Requests stay with the connection (no cloned descriptors) only
        // where a successor will take the mounts over.
        var fuseOptions = configuration.fuse
        fuseOptions.surviveRestarts = handover.isEnabled
        let mounts = LazyMounts(fuseOptions: fuseOptions, handover: handover, logger: logger)
        var client: RegistryClient?
        var sources: [any LayerSource] = []
        var cache: ChunkCache?
        let credentials = try DaemonCredentials(configuration: configuration, logger: logger)
        var cvmfsClient: CVMFSHTTPClient?
        var images: ImageMetadata?
        if configuration.cvmfs.enabled || configuration.lazy.enabled || configuration.unpack.enabled {
            let chunkCache = try ChunkCache(options: configuration.chunkCacheOptions, logger: logger)
            cache = chunkCache
            if configuration.cvmfs.enabled {
                let (source, httpClient) = CVMFSSetup.source(configuration, cache: chunkCache, logger: logger)
                cvmfsClient = httpClient
                sources.append(source)
            }
            if configuration.lazy.enabled || configuration.unpack.enabled {
                let registryClient = RegistryClient(configuration: configuration.registry, logger: logger,
                                                    credentialSources: credentials.sources)
                // Manifests and configs, fetched once per image for every source.
                let metadata = ImageMetadata(client: registryClient, logger: logger)
                images = metadata
                if configuration.lazy.enabled {
                    sources.append(RegistryLayerSource(client: registryClient, cache: chunkCache,
                                                       options: configuration.lazy.layer,
                                                       savedTOCs: SavedTOCs(paths: paths), images: metadata, logger: logger))
                    if configuration.gzipIndex.enabled {
                        sources.append(GzipIndexLayerSource(client: registryClient, cache: chunkCache,
                                                            options: configuration.lazy.layer, images: metadata,
                                                            settings: configuration.gzipIndex, paths: paths, logger: logger))
                    }
                }
                if configuration.unpack.enabled {
                    let namespace = configuration.fuse.opaqueXattrNamespaces.first ?? "trusted"
                    sources.append(UnpackLayerSource(client: registryClient, images: metadata, settings: configuration.unpack,
                                                     paths: paths, opaqueXattr: "\(namespace).overlay.opaque", logger: logger))
                }
                client = registryClient
            }
        }
        let layerSources = sources.isEmpty ? nil : LayerSourceChain(sources: sources, logger: logger)
        let service = SnapshotterService(paths: paths, store: store, layerSources: layerSources, mounts: mounts,
                                         prefetchTimeout: configuration.lazy.layer.prefetchTimeout, events: events,
                                         containerProcesses: configuration.containerdAddress.isEmpty || layerSources == nil
                                             ? nil : ContainerProcessLookup(socketPath: configuration.containerdAddress,
                                                                            logger: logger),
                                         logger: logger)
        try service.restoreLazyLayers()
        let retention = CredentialRetention(credentials: credentials.captured, store: store,
                                            graceSeconds: configuration.cri.credentialGraceSeconds, logger: logger)
        events.observe(.removed) { retention.pruneSoon() }
        retention.pruneSoon()

        let listener = try UnixSocketListener.listen(at: configuration.address)
        let transport = HTTP2ServerTransport.Posix(listeningSocketDescriptor: Int(listener), transportSecurity: .plaintext)
        let status = StatusService(collector: StatusCollector(store: store, mounts: mounts, cache: cache, started: started))
        let server = GRPCServer(transport: transport, services: [SnapshotsService(backend: service, logger: logger), status])
        var pullAhead: PullAhead?
        if configuration.cri.openLayersOnPull, let images, let layerSources {
            pullAhead = PullAhead(images: images, chain: layerSources, isCommitted: service.isCommitted, logger: logger)
        }
        let criProxy = !configuration.cri.isEnabled ? nil
            : try CRIProxyServer(settings: configuration.cri, snapshotsAddress: configuration.address,
                                 containerdAddress: configuration.containerdAddress,
                                 credentials: credentials.captured, pullAhead: pullAhead, logger: logger)
        var metricsServer: MetricsServer?
        if let address = configuration.metricsAddress {
            let collector = MetricsCollector(mounts: mounts, events: events, client: client)
            metricsServer = try MetricsServer.start(address: address, collector: collector, logger: logger)
            logger.info("metrics endpoint listening", metadata: ["address": "http://\(address)/metrics"])
        }
        let housekeeping = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        housekeeping.schedule(deadline: .now() + 60, repeating: 60)
        housekeeping.setEventHandler {
            layerSources?.expireUnclaimed()
            retention.pruneSoon()
        }
        housekeeping.resume()

        // A stop is passed to the server only once its transport listens: a
        // graceful shutdown begun while the transport is still starting is
        // lost, and serve() then runs on (a SIGTERM right after start hung
        // the daemon, 1 run in ~6). Whichever comes second, the signal or
        // the listening, begins the shutdown.
        let gate = StopGate()
        let signals = [SIGTERM, SIGINT].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [logger] in
                logger.notice("stopping", metadata: ["signal": "\(number)"])
                SystemdNotifier.notify("STOPPING=1")
                if gate.stopRequested() {
                    server.beginGracefulShutdown()
                    criProxy?.stop()
                }
            }
            source.resume()
            return source
        }
        logger.notice("starling serving containerd snapshots", metadata: [
            "version": "\(StarlingVersion.current)", "address": "\(configuration.address)", "root": "\(configuration.root)",
            "lazy": "\(configuration.lazy.enabled)", "cvmfs": "\(configuration.cvmfs.enabled ? configuration.cvmfs.mountpoint : "off")"])
        SystemdNotifier.notify("READY=1\nSTATUS=serving \(configuration.address)")
        defer {
            signals.forEach { $0.cancel() }
            housekeeping.cancel()
            metricsServer?.stop()
            // Under systemd with the file descriptor store, the next run
            // takes the mounts over: running containers keep their files.
            if handover.isEnabled { mounts.detachAll() } else { mounts.unmountAll() }
            cvmfsClient?.stop()
            layerSources?.flush()
            unlink(configuration.address)
            logger.notice("stopped")
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            group.addTask {
                _ = try await transport.listeningAddress
                try await criProxy?.listening()
                if gate.listening() {
                    server.beginGracefulShutdown()
                    criProxy?.stop()
                }
            }
            if let criProxy { group.addTask { try await criProxy.run() } }
            try await group.waitForAll()
        }
    }
}

/// Who comes second, the stop request or the transport's listening, begins
/// the server's graceful shutdown (see `Daemon.run`).
private final class StopGate: Sendable {
    private let requested = Atomic<Bool>(false)
    private let isListening = Atomic<Bool>(false)

    /// Records a stop; true if the server listens already (stop it now).
    func stopRequested() -> Bool {
        requested.store(true, ordering: .sequentiallyConsistent)
        return isListening.load(ordering: .sequentiallyConsistent)
    }

    /// Records that the transport listens; true if a stop came first.
    func listening() -> Bool {
        isListening.store(true, ordering: .sequentiallyConsistent)
        return requested.load(ordering: .sequentiallyConsistent)
    }
}
