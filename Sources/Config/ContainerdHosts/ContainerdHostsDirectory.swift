import Foundation
import Logging
import Registry
import Synchronization

/// containerd's registry host directories (`config_path`, by default
/// `/etc/containerd/certs.d` and `/etc/docker/certs.d`), looked up for a
/// registry as containerd looks them up: in each root in turn,
/// `HOST_PORT_` (for a registry with a port), `HOST:PORT`, then `_default`;
/// the first directory found is the registry's.
///
/// containerd reads a directory at each pull, so an edit applies to the
/// next pull without a restart. Starling asks for every request, so a
/// registry's answer is kept for `refreshSeconds` and then read again.
public final class ContainerdHostsDirectory: RegistryHostsDirectory {
    public static let defaultRoots = ["/etc/containerd/certs.d", "/etc/docker/certs.d"]
    public let roots: [String]
    private let refreshSeconds: Double
    private let logger: Logger
    private let cache = Mutex<[String: Entry]>([:])

    private struct Entry {
        var hosts: [RegistryHost]?
        var readAt: Date
        /// The last error logged for this registry, so a broken file is
        /// reported when it breaks, not at every read.
        var error: String?
    }

    public init(roots: [String], refreshSeconds: Double = 5, logger: Logger = Logger(label: "starling.registry")) {
        self.roots = roots
        self.refreshSeconds = refreshSeconds
        self.logger = logger
    }

    public func hosts(for registry: String) -> [RegistryHost]? {
        let now = Date()
        let cached = cache.withLock { $0[registry] }
        if let cached, now.timeIntervalSince(cached.readAt) < refreshSeconds { return cached.hosts }
        var entry = Entry(hosts: nil, readAt: now, error: nil)
        let directory = directory(for: registry)
        if let directory {
            do {
                entry.hosts = try ContainerdHostsFile.read(directory: directory)
            } catch {
                // As containerd: a hosts.toml it cannot use leaves the
                // directory's certificate files.
                entry.error = error.message
                entry.hosts = [ContainerdHostsFile.certificateFiles(directory: directory)]
                if cached?.error != error.message {
                    logger.warning("containerd's hosts.toml is not usable; only the certificate files of its directory apply",
                                   metadata: ["registry": "\(registry)", "error": "\(error.message)"])
                }
            }
        }
        cache.withLock { $0[registry] = entry }
        if let hosts = entry.hosts, let directory, cached?.hosts != hosts {
            logger.info("registry hosts from containerd's host directory", metadata: [
                "registry": "\(registry)", "directory": "\(directory)",
                "hosts": "\(hosts.map { Self.describe($0, registry: registry) }.joined(separator: ", then "))"])
        }
        return entry.hosts
    }

    /// One host for the log: URL and capabilities, header names but never
    /// their values (a header may carry a token).
    static func describe(_ host: RegistryHost, registry: String) -> String {
        var text = "\(host.scheme)://\(host.host.isEmpty ? registry : host.host)\(host.path) (\(host.capabilities)"
        if !host.caFiles.isEmpty { text += "; CA \(host.caFiles.joined(separator: " "))" }
        if !host.clientCertificates.isEmpty { text += "; client certificate" }
        if host.skipVerify == true { text += "; skip_verify" }
        let headerNames = Set(host.headers.compactMap { $0.split(separator: ":").first.map(String.init) })
        if !headerNames.isEmpty { text += "; headers \(headerNames.sorted().joined(separator: " "))" }
        return text + ")"
    }

    /// The directory holding `registry`'s configuration, nil when none does.
    func directory(for registry: String) -> String? {
        var names: [String] = []
        if let colon = registry.lastIndex(of: ":"), colon != registry.startIndex {
            names.append(registry[..<colon] + "_" + registry[registry.index(after: colon)...] + "_")
        }
        names += [registry, "_default"]
        // A registry name is HOST[:PORT]; nothing in it may lead elsewhere.
        guard !registry.contains("/"), !registry.hasPrefix(".") else { return nil }
        for root in roots {
            for name in names {
                var isDirectory: ObjCBool = false
                let path = root + "/" + name
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                    return path
                }
            }
        }
        return nil
    }
}
