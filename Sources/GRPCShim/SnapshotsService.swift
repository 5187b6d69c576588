import BlockingWork
import Dispatch
import GRPCCore
import Logging
import SwiftProtobuf

/// The gRPC face of a `SnapshotBackend`: containerd's
/// `containerd.services.snapshots.v1.Snapshots`, every RPC translated from
/// protobuf, run on a blocking-work queue and translated back.
///
/// Errors become the status codes containerd maps to its own error kinds
/// (NotFound, AlreadyExists, FailedPrecondition, InvalidArgument); anything
/// unexpected becomes Internal with its description, and is logged.
public struct SnapshotsService: Containerd_Services_Snapshots_V1_Snapshots.ServiceProtocol {
    public typealias Proto = Containerd_Services_Snapshots_V1_Snapshots
    let backend: any SnapshotBackend
    let logger: Logger
    /// Blocking work (SQLite, mount(2), registry fetches) runs here, not on
    /// Swift's cooperative pool nor on a Dispatch queue (about one thread
    /// per CPU): Prepares waiting on a slow registry must not stall the
    /// other calls. A pool of its own: calls that wait for a registry must
    /// not hold the threads the data path's read-ahead fetches run on.
    let pool = BlockingWorkPool(maxThreads: 64)

    public init(backend: any SnapshotBackend, logger: Logger) {
        self.backend = backend
        self.logger = logger
    }

    // MARK: RPCs

    public func prepare(request: ServerRequest<Containerd_Services_Snapshots_V1_PrepareSnapshotRequest>,
                        context: ServerContext) async throws -> ServerResponse<Containerd_Services_Snapshots_V1_PrepareSnapshotResponse> {
        let message = request.message
        let mounts = try await call("Prepare", message.key, request.metadata) { backend, context throws(SnapshotError) in
            try backend.prepare(key: message.key, parent: message.parent, labels: message.labels, context: context)
        }
        return ServerResponse(message: .with { $0.mounts = mounts.map(Self.proto) })
    }

    public func view(request: ServerRequest<Containerd_Services_Snapshots_V1_ViewSnapshotRequest>,
                     context: ServerContext) async throws -> ServerResponse<Containerd_Services_Snapshots_V1_ViewSnapshotResponse> {
        let message = request.message
        let mounts = try await call("View", message.key, request.metadata) { backend, context throws(SnapshotError) in
            try backend.view(key: message.key, parent: message.parent, labels: message.labels, context: context)
        }
        return ServerResponse(message: .with { $0.mounts = mounts.map(Self.proto) })
    }

    public func mounts(request: ServerRequest<Containerd_Services_Snapshots_V1_MountsRequest>,
                       context: ServerContext) async throws -> ServerResponse<Containerd_Services_Snapshots_V1_MountsResponse> {
        let message = request.message
        let mounts = try await call("Mounts", message.key, request.metadata) { backend, context throws(SnapshotError) in
            try backend.mounts(key: message.key, context: context)
        }
        return ServerResponse(message: .with { $0.mounts = mounts.map(Self.proto) })
    }

    public func commit(request: ServerRequest<Containerd_Services_Snapshots_V1_CommitSnapshotRequest>,
                       context: ServerContext) async throws -> ServerResponse<Google_Protobuf_Empty> {
        let message = request.message
        try await call("Commit", message.key, request.metadata) { backend, context throws(SnapshotError) in
            try backend.commit(name: message.name, key: message.key, labels: message.labels, context: context)
        }
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    public func remove(request: ServerRequest<Containerd_Services_Snapshots_V1_RemoveSnapshotRequest>,
                       context: ServerContext) async throws -> ServerResponse<Google_Protobuf_Empty> {
        let message = request.message
        try await call("Remove", message.key, request.metadata) { backend, context throws(SnapshotError) in
            try backend.remove(key: message.key, context: context)
        }
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    public func stat(request: ServerRequest<Containerd_Services_Snapshots_V1_StatSnapshotRequest>,
                     context: ServerContext) async throws -> ServerResponse<Containerd_Services_Snapshots_V1_StatSnapshotResponse> {
        let message = request.message
        let info = try await call("Stat", message.key, request.metadata) { backend, context throws(SnapshotError) in
            try backend.stat(key: message.key, context: context)
        }
        return ServerResponse(message: .with { $0.info = Self.proto(info) })
    }

    public func update(request: ServerRequest<Containerd_Services_Snapshots_V1_UpdateSnapshotRequest>,
                       context: ServerContext) async throws -> ServerResponse<Containerd_Services_Snapshots_V1_UpdateSnapshotResponse> {
        let message = request.message
        let requested = try Self.domain(message.info)
        let info = try await call("Update", message.info.name, request.metadata) { backend, context throws(SnapshotError) in
            try backend.update(requested, fieldPaths: message.updateMask.paths, context: context)
        }
        return ServerResponse(message: .with { $0.info = Self.proto(info) })
    }

    public func list(request: ServerRequest<Containerd_Services_Snapshots_V1_ListSnapshotsRequest>,
                     context: ServerContext) async throws -> StreamingServerResponse<Containerd_Services_Snapshots_V1_ListSnapshotsResponse> {
        let message = request.message
        let infos = try await call("List", message.filters.joined(separator: " OR "), request.metadata) { backend, context throws(SnapshotError) in
            try backend.list(filters: message.filters, context: context)
        }
        return StreamingServerResponse { writer in
            // Batches keep each message well under gRPC's 4 MiB default limit.
            var start = 0
            repeat {
                let batch = infos[start..<min(infos.count, start + Self.listBatch)]
                try await writer.write(.with { $0.info = batch.map(Self.proto) })
                start += Self.listBatch
            } while start < infos.count
            return [:]
        }
    }

    public func usage(request: ServerRequest<Containerd_Services_Snapshots_V1_UsageRequest>,
                      context: ServerContext) async throws -> ServerResponse<Containerd_Services_Snapshots_V1_UsageResponse> {
        let message = request.message
        let usage = try await call("Usage", message.key, request.metadata) { backend, context throws(SnapshotError) in
            try backend.usage(key: message.key, context: context)
        }
        return ServerResponse(message: .with {
            $0.size = usage.size
            $0.inodes = usage.inodes
        })
    }

    public func cleanup(request: ServerRequest<Containerd_Services_Snapshots_V1_CleanupRequest>,
                        context: ServerContext) async throws -> ServerResponse<Google_Protobuf_Empty> {
        try await call("Cleanup", "", request.metadata) { backend, context throws(SnapshotError) in
            try backend.cleanup(context: context)
        }
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    static let listBatch = 100

    // MARK: plumbing

    /// Runs one backend call on the blocking queue and turns its error into
    /// the `RPCError` containerd expects.
    private func call<T: Sendable>(_ method: String, _ subject: String, _ metadata: Metadata,
                                   _ body: @escaping @Sendable (any SnapshotBackend, RequestContext) throws(SnapshotError) -> T) async throws -> T {
        let context = RequestContext(namespace: metadata["containerd-namespace"].first(where: { _ in true }).flatMap { value in
            if case .string(let text) = value { return text }
            return nil
        })
        let backend = self.backend
        let logger = self.logger
        let result: Result<T, SnapshotError> = await withCheckedContinuation { continuation in
            pool.async {
                let started = DispatchTime.now().uptimeNanoseconds
                defer {
                    logger.trace("snapshot call", metadata: [
                        "method": "\(method)", "key": "\(subject)",
                        "seconds": "\(String(format: "%.4f", Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9))"])
                }
                do throws(SnapshotError) {
                    continuation.resume(returning: .success(try body(backend, context)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        switch result {
        case .success(let value):
            return value
        case .failure(let error):
            var metadata: Logger.Metadata = ["method": "\(method)", "error": "\(error)"]
            if !subject.isEmpty { metadata["key"] = "\(subject)" }
            if let namespace = context.namespace { metadata["namespace"] = "\(namespace)" }
            switch error {
            case .internal:
                logger.error("snapshot call failed", metadata: metadata)
            case .alreadyExists:
                logger.debug("snapshot call answered AlreadyExists", metadata: metadata)
            default:
                logger.info("snapshot call refused", metadata: metadata)
            }
            throw Self.rpcError(error)
        }
    }

    static func rpcError(_ error: SnapshotError) -> RPCError {
        switch error {
        case .notFound(let message): return RPCError(code: .notFound, message: message)
        case .alreadyExists(let message): return RPCError(code: .alreadyExists, message: message)
        case .failedPrecondition(let message): return RPCError(code: .failedPrecondition, message: message)
        case .invalidArgument(let message): return RPCError(code: .invalidArgument, message: message)
        case .internal(let message): return RPCError(code: .internalError, message: message)
        }
    }

    // MARK: protobuf ⇄ domain

    static func proto(_ mount: MountSpec) -> Containerd_Types_Mount {
        .with {
            $0.type = mount.type
            $0.source = mount.source
            $0.target = mount.target
            $0.options = mount.options
        }
    }

    static func proto(_ info: SnapshotInfo) -> Containerd_Services_Snapshots_V1_Info {
        .with {
            $0.name = info.name
            $0.parent = info.parent
            $0.kind = Containerd_Services_Snapshots_V1_Kind(rawValue: info.kind.rawValue) ?? .unknown
            $0.createdAt = Google_Protobuf_Timestamp(date: info.created)
            $0.updatedAt = Google_Protobuf_Timestamp(date: info.updated)
            $0.labels = info.labels
        }
    }

    static func domain(_ info: Containerd_Services_Snapshots_V1_Info) throws -> SnapshotInfo {
        // Update only reads name and labels; the kind is informational.
        let kind = SnapshotKind(rawValue: info.kind.rawValue) ?? .committed
        return SnapshotInfo(name: info.name, parent: info.parent, kind: kind,
                            created: info.createdAt.date, updated: info.updatedAt.date, labels: info.labels)
    }
}
