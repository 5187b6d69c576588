import Basics
import Foundation
import Logging
import Synchronization

/// Credentials kubelet handed to the container runtime in CRI `PullImage`
/// (see the daemon's CRI proxy), by registry host and repository, so that
/// the lazy fetches of that image's layers can use them.
///
/// They are kept in one file readable by root only (mode 0600 in a 0700
/// directory, written to a new file and renamed into place), so that a
/// restarted daemon can remount and read a private layer; kubelet does not
/// send them again until it pulls again. The next `PullImage` of the
/// repository replaces them (a token that expired is renewed that way), and
/// `retain` drops those of repositories no snapshot uses any more.
public final class CapturedCredentials: CredentialSource {
    public let file: String
    private let entries: Mutex<[String: Entry]>
    private let logger: Logger
    public var name: String { "CRI PullImage" }

    struct Entry: Codable, Sendable {
        var registry: String
        var repository: String
        var credentials: Credentials
        var captured: Date
    }

    private struct FileContents: Codable {
        var version = 1
        var entries: [Entry]
    }

    /// Loads what an earlier run saved at `file` (absent is fine; an
    /// unreadable file is set aside with a warning, not fatal).
    public init(file: String, logger: Logger) {
        self.file = file
        self.logger = logger
        var loaded: [String: Entry] = [:]
        if let data = FileManager.default.contents(atPath: file) {
            do {
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                let contents = try decoder.decode(FileContents.self, from: data)
                for entry in contents.entries { loaded[Self.key(entry.registry, entry.repository)] = entry }
                // Whoever made the file, only root reads it from now on.
                chmod(file, 0o600)
            } catch {
                logger.warning("cannot read the saved CRI credentials; private layers need a new pull",
                               metadata: ["file": "\(file)", "error": "\(error)"])
            }
        }
        entries = Mutex(loaded)
    }

    static func key(_ registry: String, _ repository: String) -> String { "\(registry)/\(repository)" }

    public func credentials(registry: String, repository: String) throws(RegistryError) -> Credentials? {
        entries.withLock { $0[Self.key(registry, repository)]?.credentials }
    }

    /// Keeps `credentials` for `repository` on `registry`, replacing any
    /// earlier ones, and saves the file.
    public func capture(_ credentials: Credentials, registry: String, repository: String, at time: Date = Date()) {
        let changed = entries.withLock { table -> Bool in
            let key = Self.key(registry, repository)
            let previous = table[key]?.credentials
            table[key] = Entry(registry: registry, repository: repository, credentials: credentials, captured: time)
            return previous != credentials
        }
        if changed { save() }
        logger.debug("kept the credentials of a CRI pull", metadata: [
            "registry": "\(registry)", "repository": "\(repository)", "changed": "\(changed)"])
    }

    /// `registry/repository` names with credentials.
    public var repositories: Set<String> { entries.withLock { Set($0.keys) } }

    /// Drops the credentials of every repository not in `inUse` (names
    /// `registry/repository`) that were captured before `cutoff` (a pull
    /// whose snapshots are still being made keeps its credentials).
    /// Returns the names dropped.
    @discardableResult
    public func retain(inUse: Set<String>, capturedBefore cutoff: Date) -> [String] {
        let dropped = entries.withLock { table -> [String] in
            let doomed = table.filter { !inUse.contains($0.key) && $0.value.captured < cutoff }.map(\.key)
            for key in doomed { table.removeValue(forKey: key) }
            return doomed
        }
        if !dropped.isEmpty {
            save()
            logger.info("dropped the CRI credentials of repositories no snapshot uses", metadata: [
                "repositories": "\(dropped.sorted().joined(separator: ","))"])
        }
        return dropped
    }

    private func save() {
        let snapshot = entries.withLock { Array($0.values) }.sorted { $0.registry + $0.repository < $1.registry + $1.repository }
        do {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys]
            try PrivateFile.write(try encoder.encode(FileContents(entries: snapshot)), to: file)
        } catch {
            logger.warning("cannot save the CRI credentials; after a restart private layers need a new pull",
                           metadata: ["file": "\(file)", "error": "\(error)"])
        }
    }
}

/// A file only root can read: written to a temporary file created 0600
/// (never readable by others, not even for a moment), synced, renamed into
/// place, in a directory that is 0700.
enum PrivateFile {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func write(_ data: Data, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        guard chmod(directory, 0o700) == 0 else { throw Failure(description: "chmod 0700 \(directory): errno \(errno)") }
        let temporary = path + ".new-\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "create \(temporary): errno \(errno)") }
        let written = (try? PosixFile.write(fd, ArraySlice(data), at: 0, path: temporary)) != nil
        let synced = fsync(fd) == 0
        close(fd)
        guard written, synced, rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw Failure(description: "write \(path): errno \(code)")
        }
    }
}
