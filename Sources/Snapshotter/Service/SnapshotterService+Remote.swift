import Basics
import BlockingWork
import Foundation
import FuseFS
import GRPCShim
import LazyLayer
import Logging
import Registry

extension SnapshotterService {
    /// The remote-snapshot handshake: serve `target`'s layer without a
    /// download if a layer source can, and commit it under its chain ID.
    /// Returns true when the committed snapshot exists (the caller answers
    /// AlreadyExists), false when containerd must download the layer
    /// (ordinary Prepare).
    func prepareRemote(_ target: RemoteLayerTarget, parent: String, labels: [String: String]) throws(SnapshotError) -> Bool {
        // One preparation per chain ID at a time; latecomers take its answer.
        let (pending, isFirst) = preparingSlot(target.chainID)
        guard isFirst else { return pending.wait() }
        var served = false
        defer {
            finishPreparing(target.chainID, pending, served)
        }
        served = try prepareRemoteNow(target, parent: parent, labels: labels)
        return served
    }

    /// The layer a Prepare's labels ask to serve remotely, nil for an
    /// ordinary Prepare, including one whose layer cannot be served
    /// remotely (logged): containerd then downloads it.
    func remoteTarget(_ labels: [String: String]) -> RemoteLayerTarget? {
        do {
            return try RemoteLayerTarget(labels: labels)
        } catch {
            fellBack(chain: labels[SnapshotLabel.targetReference] ?? "", layer: nil, reason: "\(error)")
            return nil
        }
    }

    /// A Prepare that goes on as an ordinary one: logged with the reason
    /// and counted, the same way wherever it is decided.
    private func fellBack(chain: String, layer: String?, reason: String) {
        var metadata: Logger.Metadata = ["chain": "\(chain)", "reason": "\(reason)"]
        if let layer { metadata["layer"] = "\(layer)" }
        logger.info("layer is not served remotely; containerd downloads it", metadata: metadata)
        events.record(.fellBack)
    }

    private func prepareRemoteNow(_ target: RemoteLayerTarget, parent: String, labels: [String: String]) throws(SnapshotError) -> Bool {
        guard let layerSources else { return false }
        let existing = try guarded("lookup of \(target.chainID)") { try store.read { db in try db.snapshot(key: target.chainID) } }
        if let existing {
            // Served before (by us, or committed by containerd after a download).
            if existing.kind == .committed {
                try awaitLazyMounts([existing], for: target.chainID)
                return true
            }
            return false
        }
        let known = (try? knownLayerDigests()) ?? []
        let started = Date()
        switch layerSources.serve(target, known: known) {
        case .notServed(let reason):
            fellBack(chain: target.chainID, layer: target.layerDigest, reason: "\(reason)")
            return false
        case .served(let layer):
            return try commitServed(layer, target: target, parent: parent, labels: labels, started: started)
        }
    }

    /// Commits the snapshot of a served layer; a lazily served one is then
    /// mounted and its prioritized files awaited (up to the prefetch
    /// timeout). Any failure removes what was made and falls back to an
    /// ordinary Prepare.
    private func commitServed(_ served: ServedLayer, target: RemoteLayerTarget, parent: String, labels: [String: String],
                              started: Date) throws(SnapshotError) -> Bool {
        let entered = Date()
        let source = layerSources?.source(named: served.record.source)
        served.persist()
        // What the container's start reads first needs no mount: its
        // fetches run while the snapshot is committed and mounted (a few to
        // 30 ms on a busy node) instead of after.
        if let lazy = served.lazy { startupReadahead(lazy, image: target.image) }
        do {
            try createSnapshot(.committed, key: target.chainID, parent: parent, labels: labels,
                               source: .remote(served.record),
                               usage: served.usage ?? served.lazy.map(Self.unpackedSize) ?? SnapshotUsage(size: 0, inodes: 0))
        } catch {
            // Nothing will mount the layer: stop its prefetch and read-ahead.
            served.lazy?.close()
            throw error
        }
        guard let lazy = served.lazy else {
            logger.info("layer used in place from \(source?.title ?? served.record.source)", metadata: [
                "layer": "\(target.layerDigest)", "chain": "\(target.chainID)", "source": "\(served.record.source)",
                "directories": "\(served.record.directories ?? [])"])
            if let source { events.record(source.event) }
            return true
        }
        let record = try guarded("lookup of \(target.chainID)") { try store.read { db in try db.snapshot(key: target.chainID) } }
        guard let id = record?.id else { return false }
        let committed = Date()
        do {
            try mounts.mount(lazy, snapshot: id, at: paths.filesystem(id))
        } catch {
            logger.error("cannot mount lazy layer; containerd downloads it instead", metadata: [
                "layer": "\(target.layerDigest)", "error": "\(error)"])
            lazy.close()
            try? remove(key: target.chainID, context: RequestContext())
            events.record(.fellBack)
            return false
        }
        let mounted = Date()
        lazy.layerMounted()
        let prefetched = lazy.prefetch(timeout: prefetchTimeout)
        func seconds(_ from: Date, _ to: Date) -> Logger.MetadataValue { "\(String(format: "%.3f", to.timeIntervalSince(from)))" }
        logger.info("layer mounted lazily", metadata: [
            "layer": "\(target.layerDigest)", "chain": "\(target.chainID)", "snapshot": "\(id)",
            "source": "\(served.record.source)", "prefetchDone": "\(prefetched)", "seconds": seconds(started, Date()),
            "openSeconds": seconds(started, entered), "commitSeconds": seconds(entered, committed),
            "mountSeconds": seconds(committed, mounted)])
        if let source { events.record(source.event) }
        return true
    }

    /// Fetches what a container start reads first (see
    /// `LazyLayer.readAheadStartup`): the runtime's files at once, the
    /// image's program once its config is in (it usually arrived while the
    /// TOC did), unless the layer is profiled (`readAheadImageDefaults`).
    /// Does not wait.
    private func startupReadahead(_ layer: LazyLayer, image: ImageReference) {
        guard let hints = layerSources?.startupHints(image) else {
            layer.readAheadStartup()
            return
        }
        if let known = hints.value {
            layer.readAheadImageDefaults(known ?? StartupHints())
            return
        }
        layer.readAheadStartup()
        BlockingWorkPool.shared.async {
            if let known = hints.wait(seconds: 5), let known { layer.readAheadImageDefaults(known) }
        }
    }

    /// Files and inodes of the unpacked layer, from its index: what `Usage`
    /// reports for a lazy snapshot (its cached bytes live in the chunk cache).
    static func unpackedSize(_ layer: LazyLayer) -> SnapshotUsage {
        let index = layer.index
        let ids = index.entryIDs
        return SnapshotUsage(size: ids.reduce(0) { $0 + index.size(of: $1) }, inodes: Int64(ids.count))
    }

    /// Whether a committed snapshot named `key` (a layer's chain ID) exists:
    /// containerd will not ask for that layer again.
    @Sendable func isCommitted(_ key: String) -> Bool {
        ((try? store.read { db in try db.snapshot(key: key) }) ?? nil)?.kind == .committed
    }

    /// Blob digests of the layers the store already holds served remotely.
    func knownLayerDigests() throws -> Set<String> {
        try store.read { db in Set(try db.allSnapshots().compactMap { $0.source.remote?.layerDigest }) }
    }

    // MARK: restart

    /// Mounts every lazily served layer of the store again, in the
    /// background, through the source that served it (a registry layer
    /// from its saved TOC when there is one: no registry round trip). A
    /// mount whose live connection the previous run handed over (systemd's
    /// file descriptor store) is taken over instead, so the containers
    /// using it never notice; other mounts left by a previous run are
    /// detached first. Calls that hand out mounts wait for the layers they
    /// involve.
    func restoreLazyLayers() throws {
        let handover = mounts.handover
        removeUnusedLayerState(keeping: try knownLayerDigests())
        let lazy = try store.read { db in try db.allSnapshots() }.compactMap { record -> (Int64, RemoteLayerRecord)? in
            guard let remote = record.source.remote, remote.isMountedLazily, let id = record.id else { return nil }
            return (id, remote)
        }
        let table = MountInfo.current()
        var connections: [Int64: (descriptor: Int32, initRequest: FuseInitRequest)] = [:]
        if layerSources != nil {
            for (id, _) in lazy where handover.inheritedSnapshots.contains(id) {
                connections[id] = handover.claim(snapshot: id, mountpoint: paths.filesystem(id), mounts: table)
            }
        }
        handover.releaseUnclaimed()
        let adopted = Set(connections.keys.map { paths.filesystem($0) })
        for stale in table.mountpoints(under: paths.snapshots).sorted(by: >) where !adopted.contains(stale) {
            logger.info("detaching a mount left by a previous run", metadata: ["mountpoint": "\(stale)"])
            _ = umount2(stale, Int32(MNT_DETACH))
        }
        // Without sources, each still gets an entry (`remount` says why it
        // cannot be served): its mountpoint is an empty directory.
        for (id, record) in lazy {
            remount(id, record, adopting: connections[id])
        }
        if !lazy.isEmpty {
            logger.info("remounting lazy layers", metadata: ["count": "\(lazy.count)", "takenOver": "\(connections.count)"])
        }
    }

    /// Removes what the sources keep per layer (`layers/<digest>`: an
    /// unpacked tree, a saved TOC or index) for layers no snapshot uses. A
    /// layer opened ahead that no Prepare claimed (a pull containerd
    /// abandoned) left it behind. Only at start, before the socket serves:
    /// no Prepare can be about to use such a layer then. The directories
    /// are renamed out of the way at once and deleted in the background,
    /// so a large tree does not hold the start up.
    private func removeUnusedLayerState(keeping used: Set<String>) {
        let kept = Set(used.map { (paths.layer($0) as NSString).lastPathComponent })
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: paths.layers) else { return }
        var doomed: [String] = []
        for name in names where !kept.contains(name) {
            let path = "\(paths.layers)/\(name)"
            let away = name.hasPrefix("rm-") ? path : "\(paths.layers)/rm-\(name)"
            guard (try? PosixFile.rename(path, away)) != nil else { continue }
            logger.info("removing the files of a layer no snapshot uses", metadata: ["layer": "\(name)"])
            doomed.append(away)
        }
        guard !doomed.isEmpty else { return }
        BlockingWorkPool.shared.async { [self, doomed] in
            for path in doomed { removeTree(path) }
        }
    }

    /// Mounts a lazily served layer again in the background (see
    /// `LazyMounts.mountLater`). When its source is not configured (the
    /// remote sources switched off since it was served) the snapshot is
    /// marked unavailable: its mountpoint is an empty directory, and
    /// handing that out would start containers with the layer missing.
    func remount(_ id: Int64, _ record: RemoteLayerRecord,
                 adopting connection: (descriptor: Int32, initRequest: FuseInitRequest)? = nil) {
        guard let source = layerSources?.source(named: record.source) else {
            let reason = "it was served by layer source \(record.source), which is not configured now "
                + "(enable it again, or remove the image and pull it again)"
            logger.error("a lazily served layer cannot be served", metadata: [
                "snapshot": "\(id)", "layer": "\(record.layerDigest)", "reason": "\(reason)"])
            mounts.unavailable(snapshot: id, reason: reason)
            return
        }
        mounts.mountLater(snapshot: id, at: paths.filesystem(id), adopting: connection) {
            let lazy = try source.restore(record)
            lazy.start()
            return lazy
        }
    }

    // MARK: per-chain serialization

    private func preparingSlot(_ chainID: String) -> (OneShot<Bool>, Bool) {
        preparingTable.withLock { table in
            if let existing = table[chainID] { return (existing, false) }
            let pending = OneShot<Bool>()
            table[chainID] = pending
            return (pending, true)
        }
    }

    private func finishPreparing(_ chainID: String, _ pending: OneShot<Bool>, _ served: Bool) {
        preparingTable.withLock { _ = $0.removeValue(forKey: chainID) }
        pending.fulfil(served)
    }
}

extension SnapshotterService {
    /// When containerd asks for the mounts of a container's snapshot on
    /// lazy layers, reads the container's process from containerd (in the
    /// background) and fetches its program and libraries before runc
    /// executes it; see `ContainerProcessLookup`.
    func readAheadContainerProcess(key: String, record: SnapshotRecord, ancestors: [SnapshotRecord]) {
        guard let lookup = containerProcesses, record.kind == .active else { return }
        let layers = ancestors.compactMap { ancestor -> LazyLayer? in
            guard ancestor.source.isMountedLazily, let id = ancestor.id else { return nil }
            return mounts.layer(of: id)
        }
        guard !layers.isEmpty, lookup.isFirstLookup(of: key) else { return }
        let logger = self.logger
        Task.detached {
            guard let process = await lookup.process(forSnapshotKey: key) else { return }
            logger.debug("reading the container's program ahead", metadata: [
                "key": "\(key)", "program": "\(process.arguments.first ?? "")"])
            for layer in layers { layer.readAheadStartup(process.startupHints) }
        }
    }
}
