import Basics

/// Unpacks a layer blob into a new directory while it downloads: the
/// bytes go through gzip (member after member) into the tar reader and
/// straight to disk (`TarStreamExtractor`), with no copy of the blob. The
/// uncompressed stream's sha256 (the diff ID) comes out at the end, for
/// the caller to check against the image config before using the tree.
public final class StreamingLayerUnpacker {
    public enum Compression: Sendable { case gzip, none }

    private let extractor: TarStreamExtractor
    private let inflater: ZlibInflater?
    private var tar = TarStreamParser()
    private var diffHash = SHA256Hasher()
    private var uncompressed: Int64 = 0
    private var memberEnded = false
    private var sawInput = false
    private var buffer = [UInt8](repeating: 0, count: 256 << 10)

    /// Creates `directory` (which must not exist) and unpacks into it.
    public init(into directory: String, compression: Compression,
                whiteouts: TarStreamExtractor.Whiteouts = .overlay(opaqueXattr: "trusted.overlay.opaque")) throws {
        inflater = compression == .gzip ? try ZlibInflater(framing: .gzip) : nil
        extractor = try TarStreamExtractor(root: directory, whiteouts: whiteouts)
    }

    deinit { extractor.closeAll() }

    /// The next bytes of the blob.
    public func consume(_ bytes: UnsafeRawBufferPointer) throws {
        guard !bytes.isEmpty else { return }
        sawInput = true
        guard let inflater else {
            try emit(bytes)
            return
        }
        var cursor = 0
        while cursor < bytes.count {
            if memberEnded {
                try inflater.reset(framing: .gzip)
                memberEnded = false
            }
            let step = try buffer.withUnsafeMutableBytes { out in
                try inflater.inflate(UnsafeRawBufferPointer(rebasing: bytes[cursor...]), into: out, stopAtBlocks: false)
            }
            cursor += step.consumed
            if step.produced > 0 {
                try buffer.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[0..<step.produced])) }
            }
            if step.streamEnded { memberEnded = true }
            if step.consumed == 0 && step.produced == 0 && !step.streamEnded {
                throw StargzError.decompressionFailed("inflate makes no progress")
            }
        }
    }

    /// The blob is complete: checks it ended cleanly, finishes the tree
    /// (directory times) and returns the diff ID and uncompressed size.
    public func finish() throws -> (diffID: SHA256Digest, uncompressedSize: Int64) {
        if inflater != nil && (!sawInput || !memberEnded) {
            throw StargzError.truncated("the gzip stream ends inside a member")
        }
        try tar.finish()
        try extractor.finish()
        let digest = diffHash.finalize()
        return (digest, uncompressed)
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        diffHash.update(bytes)
        uncompressed += Int64(bytes.count)
        let extractor = self.extractor
        try tar.feed(bytes) { event in
            switch event {
            case .entry(let entry): try extractor.add(entry)
            case .data(let data): try extractor.data(data)
            case .entryEnd: try extractor.entryEnd()
            }
        }
    }
}
