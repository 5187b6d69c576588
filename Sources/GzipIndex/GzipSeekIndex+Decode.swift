import Basics
import StargzReader

extension GzipSeekIndex {
    /// The `count` bytes `skip` bytes after checkpoint `checkpoint`,
    /// inflated from `raw` (the blob from the checkpoint's first byte, at
    /// least to the chunk's compressed end) and checked against `digest`:
    /// nothing unverified is returned. A parked stream of the same
    /// checkpoint that has not gone past `skip` is continued.
    func decode(checkpoint: Int, skip: Int64, count: Int, raw: ArraySlice<UInt8>, digest: SHA256Digest,
                path: String, fileOffset: Int64, park: CheckpointStreamPark) throws -> [UInt8] {
        let bytes: [UInt8]
        do {
            let stream = try park.take(checkpoint: checkpoint, notPast: skip, rawCount: raw.count)
                ?? CheckpointStream(checkpoint: checkpoint, of: checkpoints[checkpoint], raw: raw)
            bytes = try stream.read(at: skip, count: count, raw: raw)
            park.park(stream)
        } catch {
            throw GzipIndexError.inflateFailed(path: path, fileOffset: fileOffset, reason: "\(error)")
        }
        let actual = SHA256Digest.of(bytes)
        guard actual == digest else {
            throw GzipIndexError.contentMismatch(path: path, fileOffset: fileOffset, expected: digest.description,
                                                 actual: actual.description)
        }
        return bytes
    }
}
