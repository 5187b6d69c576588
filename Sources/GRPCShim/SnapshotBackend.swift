import Foundation

/// What containerd asks of a snapshotter, in Swift terms: the ten RPCs of
/// `containerd.services.snapshots.v1.Snapshots` without protobuf.
///
/// The daemon (`Snapshotter` module) implements this; `SnapshotsService`
/// adapts it to gRPC. Methods are synchronous and may block (SQLite, mount
/// syscalls, registry round trips): the service runs them on threads of
/// its own, never on Swift's cooperative pool.
public protocol SnapshotBackend: Sendable {
    func prepare(key: String, parent: String, labels: [String: String], context: RequestContext) throws(SnapshotError) -> [MountSpec]
    func view(key: String, parent: String, labels: [String: String], context: RequestContext) throws(SnapshotError) -> [MountSpec]
    func mounts(key: String, context: RequestContext) throws(SnapshotError) -> [MountSpec]
    func commit(name: String, key: String, labels: [String: String], context: RequestContext) throws(SnapshotError)
    func remove(key: String, context: RequestContext) throws(SnapshotError)
    func stat(key: String, context: RequestContext) throws(SnapshotError) -> SnapshotInfo
    /// Replaces the fields named in `fieldPaths` (`labels`, `labels.KEY`);
    /// an empty list replaces all labels, as containerd's snapshotters do.
    func update(_ info: SnapshotInfo, fieldPaths: [String], context: RequestContext) throws(SnapshotError) -> SnapshotInfo
    /// Snapshots matching any of `filters` (containerd filter syntax; none = all).
    func list(filters: [String], context: RequestContext) throws(SnapshotError) -> [SnapshotInfo]
    func usage(key: String, context: RequestContext) throws(SnapshotError) -> SnapshotUsage
    func cleanup(context: RequestContext) throws(SnapshotError)
}

/// Who is asking: the containerd namespace of the call (from the
/// `containerd-namespace` gRPC metadata), for logs and metrics.
public struct RequestContext: Sendable, Equatable {
    public var namespace: String?
    public init(namespace: String? = nil) { self.namespace = namespace }
}

/// containerd's snapshot kinds (the numbers are the wire enum's).
public enum SnapshotKind: Int, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case view = 1
    case active = 2
    case committed = 3

    /// The lowercase names containerd's filters compare against.
    public var description: String {
        switch self {
        case .view: return "view"
        case .active: return "active"
        case .committed: return "committed"
        }
    }
}

/// containerd's `snapshots.Info`.
public struct SnapshotInfo: Sendable, Equatable {
    public var name: String
    /// Key of the parent snapshot, "" for none.
    public var parent: String
    public var kind: SnapshotKind
    public var created: Date
    public var updated: Date
    public var labels: [String: String]

    public init(name: String, parent: String = "", kind: SnapshotKind, created: Date = Date(),
                updated: Date = Date(), labels: [String: String] = [:]) {
        self.name = name
        self.parent = parent
        self.kind = kind
        self.created = created
        self.updated = updated
        self.labels = labels
    }
}

/// One mount containerd performs (`containerd.types.Mount`).
public struct MountSpec: Sendable, Equatable, CustomStringConvertible {
    public var type: String
    public var source: String
    public var target: String
    public var options: [String]

    public init(type: String, source: String, target: String = "", options: [String]) {
        self.type = type
        self.source = source
        self.target = target
        self.options = options
    }

    public var description: String { "\(type) \(source) \(options.joined(separator: ","))" }
}

/// Disk used by a snapshot's own directory.
public struct SnapshotUsage: Sendable, Equatable {
    public var size: Int64
    public var inodes: Int64
    public init(size: Int64, inodes: Int64) {
        self.size = size
        self.inodes = inodes
    }
}

/// Errors with the meaning containerd gives them: each maps to the gRPC
/// status code containerd turns back into its own error kind (so
/// `alreadyExists` from Prepare is the remote-snapshot handshake, and
/// `notFound` makes `ctr` say "not found"). Messages name the key.
public enum SnapshotError: Error, Sendable, Equatable, CustomStringConvertible {
    case notFound(String)
    case alreadyExists(String)
    case failedPrecondition(String)
    case invalidArgument(String)
    /// Anything else (I/O, database): a bug or a broken host, not the caller's fault.
    case `internal`(String)

    public var description: String {
        switch self {
        case .notFound(let message), .alreadyExists(let message), .failedPrecondition(let message),
             .invalidArgument(let message), .internal(let message):
            return message
        }
    }
}
