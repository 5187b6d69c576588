import Basics
import Foundation
import GzipIndex
import StargzReader
import Synchronization
import TestSupport
import XCTest

/// A real directory tree packed by GNU tar and gzip, as image builders do.
struct PackedTree {
    let root: String
    let tar: [UInt8]
    let blob: [UInt8]
    let blobPath: String
}

enum Trees {
    /// A tree with every kind of entry a layer has: small and large files
    /// (text and incompressible), empty files, a deep directory, symlinks, a
    /// hard link, a fifo, a character device, setuid and odd modes, owners,
    /// xattrs (PAX records) and a name longer than ustar's 100 bytes.
    static func makeRich(in work: TemporaryDirectory) throws -> String {
        let root = work.appending("tree")
        let fm = FileManager.default
        for dir in ["etc", "usr/lib/deep/er/still", "data", "empty-dir", "bin"] {
            try fm.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        for i in 0..<300 {
            try "line \(i)\n".write(toFile: "\(root)/etc/conf-\(i).txt", atomically: false, encoding: .utf8)
        }
        try String(repeating: "compressible text, over and over. ", count: 40_000)
            .write(toFile: "\(root)/usr/lib/deep/er/still/text.txt", atomically: false, encoding: .utf8)
        try Data(pseudoRandomBytes(count: 700_000, seed: 7)).write(to: URL(fileURLWithPath: "\(root)/data/random.bin"))
        try Data(pseudoRandomBytes(count: 3_000, seed: 8)).write(to: URL(fileURLWithPath: "\(root)/data/small.bin"))
        fm.createFile(atPath: "\(root)/data/empty", contents: nil)
        try fm.createSymbolicLink(atPath: "\(root)/bin/link", withDestinationPath: "../data/small.bin")
        try fm.createSymbolicLink(atPath: "\(root)/bin/dangling", withDestinationPath: "/nowhere")
        guard link("\(root)/data/small.bin", "\(root)/data/hard.bin") == 0 else { throw CocoaError(.fileWriteUnknown) }
        guard mkfifo("\(root)/data/fifo", 0o640) == 0 else { throw CocoaError(.fileWriteUnknown) }
        let long = String(repeating: "n", count: 150)
        try "long\n".write(toFile: "\(root)/usr/\(long).txt", atomically: false, encoding: .utf8)
        chmod("\(root)/bin/link", 0o777)
        try "#!/bin/sh\n".write(toFile: "\(root)/bin/tool", atomically: false, encoding: .utf8)
        chmod("\(root)/bin/tool", 0o4755)
        chown("\(root)/etc/conf-1.txt", 1234, 5678)
        if geteuid() == 0 {
            _ = mknod("\(root)/data/null", S_IFCHR | 0o666, 259)  // makedev(1, 3)
            try Command.check(["python3", "-c", """
                import os, sys
                os.setxattr(sys.argv[1], "user.starling", b"hello")
                os.setxattr(sys.argv[1], "trusted.overlay.opaque", b"y")
                """, "\(root)/etc/conf-2.txt"])
        }
        return root
    }

    /// Packs `root` with GNU tar (PAX, xattrs) and gzip `level`.
    static func pack(_ root: String, in work: TemporaryDirectory, name: String = "layer",
                     gzipArguments: [String] = ["-n", "-6"]) throws -> PackedTree {
        let tarPath = work.appending("\(name).tar")
        try Command.check(["tar", "--format=pax", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--sort=name",
                           "-C", root, "-cf", tarPath, "."])
        let tar = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tarPath)))
        try Command.check(["gzip", "-k", "-f"] + gzipArguments + [tarPath])
        let blobPath = tarPath + ".gz"
        return PackedTree(root: root, tar: tar, blob: try [UInt8](Data(contentsOf: URL(fileURLWithPath: blobPath))),
                          blobPath: blobPath)
    }

    /// Builds an index by feeding the blob in pieces of `piece` bytes.
    static func index(_ blob: [UInt8], options: GzipSeekIndexBuilder.Options, piece: Int = 100_000) throws -> GzipSeekIndex {
        let builder = try GzipSeekIndexBuilder(options: options)
        var offset = 0
        while offset < blob.count {
            let end = min(blob.count, offset + piece)
            try builder.consume(Array(blob[offset..<end]))
            offset = end
        }
        return try builder.finish(layerDigest: sha256Digest(blob))
    }
}

/// An in-memory blob that counts the bytes read from it.
final class CountingBlobSource: BlobSource, @unchecked Sendable {
    var bytes: [UInt8]
    private let counter = Mutex<(bytes: Int64, reads: Int)>((0, 0))

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var readBytes: Int64 { counter.withLock { $0.bytes } }
    var reads: Int { counter.withLock { $0.reads } }

    func size() throws -> Int64 { Int64(bytes.count) }

    func read(at offset: Int64, length: Int) throws -> [UInt8] {
        guard offset >= 0, length >= 0, offset + Int64(length) <= Int64(bytes.count) else {
            throw StargzError.truncated("read past the end")
        }
        counter.withLock { $0.bytes += Int64(length); $0.reads += 1 }
        return Array(bytes[Int(offset)..<(Int(offset) + length)])
    }
}
