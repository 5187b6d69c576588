import Foundation
import TestSupport

/// Rewrites a repository the project's writer made as a publisher could,
/// with its own keys: SQL run on the root catalog, manifest fields
/// replaced, the manifest signed again. What it serves then passes every
/// signature check, so a test sees what the client makes of signed but
/// malformed data. SHA-1 repositories only (the writer's default).
enum SignedRewrite {
    static let script = """
        import hashlib, os, sqlite3, subprocess, sys, tempfile, zlib
        repo, keys, sql = sys.argv[1], sys.argv[2], sys.argv[3]
        def put(compressed, letter):
            h = hashlib.sha1(compressed).hexdigest()
            path = os.path.join(repo, 'data', h[:2], h[2:] + letter)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, 'wb').write(compressed)
            return h
        body = open(os.path.join(repo, '.cvmfspublished'), 'rb').read().split(b'--\\n', 1)[0].decode()
        fields = [(line[0], line[1:]) for line in body.splitlines() if line]
        values = dict(fields)
        if sql:
            root = values['C']
            plain = zlib.decompress(open(os.path.join(repo, 'data', root[:2], root[2:] + 'C'), 'rb').read())
            fd, db_path = tempfile.mkstemp()
            os.write(fd, plain)
            os.close(fd)
            db = sqlite3.connect(db_path)
            db.executescript(sql)
            db.commit()
            db.close()
            compressed = zlib.compress(open(db_path, 'rb').read())
            os.unlink(db_path)
            values['C'] = put(compressed, 'C')
            values['B'] = str(len(compressed))
        for argument in sys.argv[4:]:
            letter, value = argument.split('=', 1)
            if value.startswith('zeros:'):  # an object of that many zero bytes, of type `letter`
                value = put(zlib.compress(bytes(int(value[6:]))), letter)
            values[letter] = value
        body = ''.join('%s%s\\n' % (letter, values[letter]) for letter, _ in fields).encode()
        body_hash = hashlib.sha1(body).hexdigest()
        signature = subprocess.run(['openssl', 'dgst', '-sha1', '-sign', os.path.join(keys, 'repo.key')],
                                   input=body_hash.encode(), check=True, capture_output=True).stdout
        open(os.path.join(repo, '.cvmfspublished'), 'wb').write(body + b'--\\n' + body_hash.encode() + b'\\n' + signature)
        """

    static let whitelistScript = """
        import hashlib, os, subprocess, sys
        repo, keys, old, new = sys.argv[1:5]
        path = os.path.join(repo, '.cvmfswhitelist')
        body = open(path, 'rb').read().split(b'--\\n', 1)[0].replace(old.encode(), new.encode())
        body_hash = hashlib.sha1(body).hexdigest()
        signature = subprocess.run(['openssl', 'pkeyutl', '-sign', '-inkey', os.path.join(keys, 'master.key'),
                                    '-pkeyopt', 'rsa_padding_mode:pkcs1'],
                                   input=body_hash.encode(), check=True, capture_output=True).stdout
        open(path, 'wb').write(body + b'--\\n' + body_hash.encode() + b'\\n' + signature)
        """

    /// Replaces `old` with `new` in the whitelist's body and signs it again
    /// with the master key.
    static func whitelist(_ repository: CVMFSTestRepository, replacing old: String, with new: String) throws {
        try Command.check(["python3", "-c", whitelistScript, repository.repositoryDirectory, repository.keys, old, new])
    }

    /// Runs `sql` on the root catalog (none when empty), sets manifest
    /// fields (`["X": "zeros:N"]` makes an object of N zero bytes of type
    /// X and names it), and signs the manifest again.
    static func apply(_ repository: CVMFSTestRepository, sql: String = "", manifest: [String: String] = [:]) throws {
        try Command.check(["python3", "-c", script, repository.repositoryDirectory, repository.keys, sql]
                          + manifest.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
    }
}

/// Runs `body` on a thread of its own and waits at most `seconds`: a test
/// of what used to hang fails instead of hanging the run.
func withinSeconds<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () throws -> T) -> Result<T, Error>? {
    let done = DispatchSemaphore(value: 0)
    let outcome = TimedOutcome<T>()
    Thread.detachNewThread {
        outcome.value = Result { try body() }
        done.signal()
    }
    guard done.wait(timeout: .now() + seconds) == .success else { return nil }
    return outcome.value
}

/// What `withinSeconds` hands back: written before its semaphore is signalled, read after.
private final class TimedOutcome<T>: @unchecked Sendable {
    var value: Result<T, Error>?
}
