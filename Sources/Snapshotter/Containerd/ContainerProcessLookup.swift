import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCShim
import LazyLayer
import Logging
import Synchronization

/// Asks containerd which process a container will run, when containerd
/// asks for the container's rootfs mounts.
///
/// containerd prepares a container's snapshot before the container exists,
/// but asks for its mounts when it creates the task, about 0.1 s before
/// runc executes the process. By then the container, with its OCI spec, is
/// in containerd's store: reading its `process` there lets the program and
/// its libraries be fetched during that 0.1 s instead of after the exec
/// (python's cold start on a 20 ms link, alternating A/B: 0.866 s without,
/// 0.837 s with it). The image's config names a
/// program too (start-up read-ahead uses it), but `ctr run IMAGE ID CMD`,
/// a pod's `command` and most real starts run something else.
///
/// Best effort: when containerd is not at `socketPath`, the key is not a
/// container's, or the spec is unreadable, nothing happens.
final class ContainerProcessLookup: Sendable {
    let socketPath: String
    private let logger: Logger
    /// Snapshot keys already looked up (containerd asks for mounts more than once).
    private let seen = Mutex<Set<String>>([])

    /// A containerd that accepts but does not answer does not hold a lookup.
    static let callOptions: CallOptions = {
        var options = CallOptions.defaults
        options.timeout = .seconds(2)
        return options
    }()

    /// How long a lookup waits for a container containerd has not created yet.
    let waitForContainerSeconds: Double

    init(socketPath: String, waitForContainerSeconds: Double = 2, logger: Logger) {
        self.socketPath = socketPath
        self.waitForContainerSeconds = waitForContainerSeconds
        self.logger = logger
    }

    /// The container name in a snapshot key as a proxy snapshotter sees it:
    /// containerd's metadata store names it `NAMESPACE/N/KEY`, and `ctr run`
    /// and the CRI plugin use the container's ID as `KEY`.
    static func container(inSnapshotKey key: String) -> (namespace: String, id: String)? {
        let parts = key.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[2].isEmpty, Int(parts[1]) != nil else { return nil }
        return (String(parts[0]), String(parts[2]))
    }

    /// True the first time `key` is seen (bounded memory: forgets all past 4096).
    func isFirstLookup(of key: String) -> Bool {
        seen.withLock { seen in
            if seen.count > 4096 { seen.removeAll() }
            return seen.insert(key).inserted
        }
    }

    /// The process of the container whose snapshot key is `key`, from its
    /// OCI spec; nil when there is none to be had.
    func process(forSnapshotKey key: String) async -> ImageProcess? {
        guard let (namespace, id) = Self.container(inSnapshotKey: key),
              FileManager.default.fileExists(atPath: socketPath) else { return nil }
        do {
            let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: socketPath),
                                                            transportSecurity: .plaintext)
            let container = try await withGRPCClient(transport: transport) { client in
                let containers = Containerd_Services_Containers_V1_Containers.Client(wrapping: client)
                // containerd may ask for the mounts before it creates the
                // container (`ctr run` reads the image's /etc/group through
                // a temporary mount while it builds the spec): wait for it.
                let deadline = ContinuousClock.now + .seconds(waitForContainerSeconds)
                while true {
                    do {
                        return try await containers.get(.with { $0.id = id },
                                                        metadata: ["containerd-namespace": "\(namespace)"],
                                                        options: Self.callOptions) {
                            try $0.message.container
                        }
                    } catch let error as RPCError where error.code == .notFound && ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(20))
                    }
                }
            }
            // Another snapshot that happens to be named like a container.
            guard container.snapshotKey == id else { return nil }
            return try ImageProcess(runtimeSpec: Array(container.spec.value))
        } catch {
            logger.debug("cannot read the container's process from containerd", metadata: [
                "key": "\(key)", "containerd": "\(socketPath)", "error": "\(error)"])
            return nil
        }
    }
}
