import StargzReader

extension GzipSeekIndex {
    /// Checks that the index is consistent, whatever produced it: a stored
    /// index is distrusted like a TOC (its digest only says which bytes it
    /// is, not that they make sense). Paths never leave the layer, offsets
    /// stay inside the blob and the tar, data regions follow each other in
    /// tar order, every file with data has its digests, and every chunk has
    /// a checkpoint to resume from. `checkWindows` also inflates each window.
    func validate(limits: Limits, checkWindows: Bool = false) throws(GzipIndexError) {
        func fail(_ check: String, _ detail: String) -> GzipIndexError { .malformed(check: check, detail: detail) }
        guard blobSize > 0 else { throw fail("blob size", "must be positive") }
        guard spanBytes > 0 else { throw fail("span bytes", "must be positive") }
        guard chunkBytes > 0, chunkBytes <= Int64(UInt32.max) else { throw fail("chunk bytes", "\(chunkBytes) is out of range") }
        guard files.count <= limits.maxFiles else {
            throw .limitExceeded(check: "file count", detail: "\(files.count) files, limit \(limits.maxFiles)")
        }
        guard checkpoints.count <= limits.maxCheckpoints else {
            throw .limitExceeded(check: "checkpoint count", detail: "\(checkpoints.count), limit \(limits.maxCheckpoints)")
        }

        // Checkpoints.
        guard let first = checkpoints.first else { throw fail("checkpoints", "there is none") }
        guard first.uncompressedOffset == 0 else {
            throw fail("checkpoint 0", "starts at uncompressed offset \(first.uncompressedOffset), not 0")
        }
        for (i, c) in checkpoints.enumerated() {
            guard c.bits <= 7 else { throw fail("checkpoint \(i) bits", "\(c.bits) is more than 7") }
            guard c.firstByte >= 0, c.compressedOffset <= blobSize, c.compressedOffset > 0 else {
                throw fail("checkpoint \(i) compressed offset", "\(c.compressedOffset) lies outside the blob of \(blobSize) bytes")
            }
            guard c.uncompressedOffset <= uncompressedSize else {
                throw fail("checkpoint \(i) uncompressed offset",
                           "\(c.uncompressedOffset) lies past the tar's \(uncompressedSize) bytes")
            }
            if i > 0 {
                let previous = checkpoints[i - 1]
                guard c.compressedOffset > previous.compressedOffset, c.firstByte > previous.firstByte,
                      c.uncompressedOffset >= previous.uncompressedOffset else {
                    throw fail("checkpoint \(i) order", "offsets do not increase")
                }
            }
            let expected = Int(min(Int64(ZlibInflater.windowSize), c.uncompressedOffset))
            guard c.windowSize == expected else {
                throw fail("checkpoint \(i) window size", "\(c.windowSize) bytes, expected \(expected)")
            }
            if checkWindows && c.windowSize > 0 {
                do {
                    _ = try c.window()
                } catch {
                    throw fail("checkpoint \(i) window", "\(error)")
                }
            }
        }

        // Files, in tar order.
        var kinds: [String: Kind] = [:]
        var dataEnd: Int64 = 0
        var compressedEnd: Int64 = 0
        for (i, file) in files.enumerated() {
            let name = "file \(i) (\"\(file.path)\")"
            let normal: String
            do {
                normal = try LayerPath.normalize(file.path)
            } catch {
                throw fail("\(name) path", "\(error)")
            }
            guard normal == file.path else { throw fail("\(name) path", "is not normalised (\"\(normal)\")") }
            guard file.path.utf8.count <= limits.maxPathBytes else { throw fail("\(name) path", "is too long") }
            if file.path.isEmpty && file.kind != .directory { throw fail("\(name) kind", "the root must be a directory") }
            guard file.mode <= 0o7777 else { throw fail("\(name) mode", "\(String(file.mode, radix: 8)) has more than permission bits") }
            guard file.xattrs.count <= limits.maxXattrsPerFile else {
                throw .limitExceeded(check: "\(name) xattrs", detail: "\(file.xattrs.count), limit \(limits.maxXattrsPerFile)")
            }
            for (x, attr) in file.xattrs.enumerated() {
                guard !attr.name.isEmpty, !attr.name.utf8.contains(0), attr.name.utf8.count <= 255 else {
                    throw fail("\(name) xattr \(x) name", "is empty, too long or has a NUL byte")
                }
                guard x == 0 || file.xattrs[x - 1].name < attr.name else {
                    throw fail("\(name) xattr \(x) name", "xattrs are not sorted by name, or repeat one")
                }
                guard attr.value.count <= limits.maxXattrValueBytes else {
                    throw .limitExceeded(check: "\(name) xattr \(x) value", detail: "\(attr.value.count) bytes")
                }
            }
            if file.kind != .regular {
                guard file.size == 0, file.chunks.isEmpty, file.digest == nil, file.dataOffset == 0 else {
                    throw fail("\(name) data", "only regular files have data")
                }
            }
            if file.kind != .charDevice && file.kind != .blockDevice {
                guard file.devMajor == 0, file.devMinor == 0 else { throw fail("\(name) device", "only devices have numbers") }
            }
            if file.kind != .symlink && file.kind != .hardlink {
                guard file.linkTarget.isEmpty else { throw fail("\(name) link target", "only links have targets") }
            }
            switch file.kind {
            case .regular:
                try validateData(of: file, name: name, dataEnd: &dataEnd, compressedEnd: &compressedEnd)
            case .symlink:
                guard !file.linkTarget.isEmpty, !file.linkTarget.utf8.contains(0),
                      file.linkTarget.utf8.count <= limits.maxPathBytes else {
                    throw fail("\(name) link target", "is empty, too long or has a NUL byte")
                }
            case .hardlink:
                guard let target = kinds[file.linkTarget], target != .directory else {
                    throw fail("\(name) link target", "\"\(file.linkTarget)\" is not an earlier non-directory entry")
                }
                guard file.linkTarget != file.path else { throw fail("\(name) link target", "links to itself") }
            case .directory, .fifo, .charDevice, .blockDevice:
                break
            }
            kinds[file.path] = file.kind
        }

        var seen = Set<Int>()
        for (n, i) in prioritized.enumerated() {
            guard i >= 0, i < files.count, files[i].kind == .regular, files[i].size > 0 else {
                throw fail("prioritized file \(n)", "\(i) is not a regular file with data")
            }
            guard seen.insert(i).inserted else { throw fail("prioritized file \(n)", "\(i) is listed twice") }
        }
    }

    /// A regular file's data: after the previous file's, inside the tar,
    /// cut into `chunkBytes` pieces whose compressed ends follow the stream
    /// and lie past the checkpoint each resumes from.
    private func validateData(of file: File, name: String, dataEnd: inout Int64,
                              compressedEnd: inout Int64) throws(GzipIndexError) {
        func fail(_ check: String, _ detail: String) -> GzipIndexError { .malformed(check: "\(name) \(check)", detail: detail) }
        guard file.size >= 0 else { throw fail("size", "is negative") }
        if file.size == 0 {
            guard file.chunks.isEmpty, file.digest == nil, file.dataOffset == 0 else {
                throw fail("data", "an empty file has no data")
            }
            return
        }
        guard file.dataOffset >= dataEnd, file.dataOffset <= uncompressedSize - file.size else {
            throw fail("data offset", "[\(file.dataOffset), +\(file.size)) overlaps the previous file or leaves the tar")
        }
        dataEnd = file.dataOffset + file.size
        guard let digest = file.digest else { throw fail("digest", "is missing") }
        let expectedChunks = (file.size + chunkBytes - 1) / chunkBytes
        guard Int64(file.chunks.count) == expectedChunks else {
            throw fail("chunks", "\(file.chunks.count) chunks, expected \(expectedChunks)")
        }
        if file.chunks.count == 1 && file.chunks[0].digest != digest {
            throw fail("chunk digest", "a single chunk's digest must be the file's")
        }
        for (c, chunk) in file.chunks.enumerated() {
            let offset = Int64(c) * chunkBytes
            guard chunk.fileOffset == offset, chunk.size == min(chunkBytes, file.size - offset) else {
                throw fail("chunk \(c)", "does not continue the file's previous chunk")
            }
            let resume = checkpoints[checkpoint(before: file.dataOffset + offset)]
            guard chunk.compressedEnd >= compressedEnd, chunk.compressedEnd > resume.firstByte,
                  chunk.compressedEnd <= blobSize else {
                throw fail("chunk \(c) compressed end", "\(chunk.compressedEnd) is out of order or outside the blob")
            }
            compressedEnd = chunk.compressedEnd
        }
    }
}
