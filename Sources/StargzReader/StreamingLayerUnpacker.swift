import Basics

/// Unpacks a layer blob into a new directory while it downloads: the
/// bytes go through gzip (member after member) or zstd (frame after
/// frame) on the thread that receives them, and on to the tar reader and straight to disk on a
/// thread of their own (`ExtractionStage`, `TarStreamExtractor`), with no
/// copy of the blob. The uncompressed stream's sha256 (the diff ID) comes
/// out at the end, for the caller to check against the image config
/// before using the tree. An unpacker dropped before `finish` stops its
/// extraction and closes its files (the caller removes the directory).
public final class StreamingLayerUnpacker {
    public enum Compression: Sendable { case gzip, zstd, none }

    private let stage: ExtractionStage
    private let inflater: IsalInflater?
    private let zstd: ZstdStreamDecoder?
    /// The last bytes ended a gzip member or a zstd frame.
    private var memberEnded = false
    private var sawInput = false
    private var finished = false
    private var buffer = [UInt8](repeating: 0, count: 256 << 10)

    /// Creates `directory` (which must not exist) and unpacks into it.
    public init(into directory: String, compression: Compression,
                whiteouts: TarStreamExtractor.Whiteouts = .overlay(opaqueXattr: "trusted.overlay.opaque")) throws {
        inflater = compression == .gzip ? IsalInflater(framing: .gzip) : nil
        zstd = compression == .zstd ? try ZstdStreamDecoder() : nil
        stage = ExtractionStage(extractor: try TarStreamExtractor(root: directory, whiteouts: whiteouts))
    }

    deinit {
        if !finished { stage.cancel() }
    }

    /// The next bytes of the blob.
    public func consume(_ bytes: UnsafeRawBufferPointer) throws {
        guard !bytes.isEmpty else { return }
        sawInput = true
        if let zstd {
            try consume(bytes, with: zstd)
            return
        }
        guard let inflater else {
            try stage.push(Array(bytes))
            return
        }
        var cursor = 0
        while cursor < bytes.count {
            if memberEnded {
                inflater.reset(framing: .gzip)
                memberEnded = false
            }
            let step = try buffer.withUnsafeMutableBytes { out in
                try inflater.inflate(UnsafeRawBufferPointer(rebasing: bytes[cursor...]), into: out)
            }
            // A member's end in bytes of an earlier piece cannot be stepped
            // back to (ISA-L rewinds a gzip member's end itself; this
            // guards the cursor).
            guard step.consumed >= 0 else {
                throw StargzError.decompressionFailed("a gzip member ended in bytes already passed")
            }
            cursor += step.consumed
            if step.produced > 0 { try stage.push(Array(buffer[0..<step.produced])) }
            if step.streamEnded { memberEnded = true }
            if step.consumed == 0 && step.produced == 0 && !step.streamEnded {
                throw StargzError.decompressionFailed("inflate makes no progress")
            }
        }
    }

    private func consume(_ bytes: UnsafeRawBufferPointer, with decoder: ZstdStreamDecoder) throws {
        var cursor = 0
        // Until the input is used up and nothing more is flushed.
        while true {
            let step = try buffer.withUnsafeMutableBytes { out in
                try decoder.decompress(UnsafeRawBufferPointer(rebasing: bytes[cursor...]), into: out)
            }
            cursor += step.consumed
            if step.produced > 0 { try stage.push(Array(buffer[0..<step.produced])) }
            memberEnded = step.frameEnded
            if cursor == bytes.count && step.produced < buffer.count { return }
            if step.consumed == 0 && step.produced == 0 {
                throw StargzError.decompressionFailed("zstd makes no progress")
            }
        }
    }

    /// The blob is complete: checks it ended cleanly, finishes the tree
    /// (directory times) and returns the diff ID and uncompressed size.
    public func finish() throws -> (diffID: SHA256Digest, uncompressedSize: Int64) {
        finished = true
        if (inflater != nil || zstd != nil) && (!sawInput || !memberEnded) {
            stage.cancel()
            throw StargzError.truncated("the \(zstd != nil ? "zstd stream ends inside a frame" : "gzip stream ends inside a member")")
        }
        do {
            return try stage.finish()
        } catch {
            stage.cancel()
            throw error
        }
    }
}
