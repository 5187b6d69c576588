import Foundation
import CZlib  // carries <sys/xattr.h>: Glibc's Swift module lacks the xattr calls
@testable import FuseFS
import StargzReader
import Testing
import TestSupport

/// OCI whiteouts only matter to overlayfs: stack a real overlay mount on two
/// Starling mounts and check that deleted files and opaque directories of
/// the upper layer hide the lower layer's content.
@Suite("Whiteouts through a real overlayfs")
struct OverlayWhiteoutTests {
    @Test("whiteouts delete, opaque directories hide, the rest merges")
    func overlayHonoursWhiteoutsAndOpaqueDirectories() throws {
        let directory = try TemporaryDirectory(prefix: "starling-overlay")
        defer { directory.remove() }
        let lower = directory.appending("lower-tree")
        let upper = directory.appending("upper-tree")
        for path in ["\(lower)/opaque", "\(lower)/merged", "\(upper)/opaque", "\(upper)/merged"] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        let files: [(String, String)] = [
            ("\(lower)/deleted", "lower deleted\n"), ("\(lower)/kept", "lower kept\n"),
            ("\(lower)/opaque/old", "hidden by opaque\n"), ("\(lower)/merged/from-lower", "lower\n"),
            ("\(lower)/merged/deleted-too", "gone\n"),
            ("\(upper)/.wh.deleted", ""), ("\(upper)/opaque/.wh..wh..opq", ""),
            ("\(upper)/opaque/new", "upper new\n"), ("\(upper)/merged/from-upper", "upper\n"),
            ("\(upper)/merged/.wh.deleted-too", ""),
        ]
        for (path, text) in files { try text.write(toFile: path, atomically: false, encoding: .utf8) }
        _ = try MountSupport.writeLayer(from: lower, to: directory.appending("lower.blob"))
        _ = try MountSupport.writeLayer(from: upper, to: directory.appending("upper.blob"))
        let lowerContent = try MountSupport.openContent(blob: directory.appending("lower.blob"))
        let upperContent = try MountSupport.openContent(blob: directory.appending("upper.blob"))

        try MountSupport.withMount(lowerContent, under: directory, name: "lower") { lowerMount, _ throws in
            try MountSupport.withMount(upperContent, under: directory, name: "upper") { upperMount, _ throws in
                // The upper layer itself shows the whiteout as a 0/0 char device.
                var status = stat()
                #expect(lstat(upperMount + "/deleted", &status) == 0)
                #expect(status.st_mode & S_IFMT == S_IFCHR && status.st_rdev == 0)
                #expect(lstat(upperMount + "/.wh.deleted", &status) != 0)
                #expect(try names(upperMount + "/opaque") == ["new"])

                let merged = directory.appending("merged")
                try FileManager.default.createDirectory(atPath: merged, withIntermediateDirectories: true)
                try Command.check(["mount", "-t", "overlay", "overlay", "-o",
                                   "lowerdir=\(upperMount):\(lowerMount)", merged])
                defer { _ = try? Command.run(["umount", "-l", merged]) }

                #expect(try names(merged) == ["kept", "merged", "opaque"])
                #expect(try names(merged + "/opaque") == ["new"])
                #expect(try names(merged + "/merged") == ["from-lower", "from-upper"])
                #expect(try String(contentsOfFile: merged + "/kept", encoding: .utf8) == "lower kept\n")
                #expect(try String(contentsOfFile: merged + "/opaque/new", encoding: .utf8) == "upper new\n")
                #expect(!FileManager.default.fileExists(atPath: merged + "/deleted"))
                #expect(!FileManager.default.fileExists(atPath: merged + "/opaque/old"))
                #expect(!FileManager.default.fileExists(atPath: merged + "/merged/deleted-too"))
            }
        }
    }

    @Test("user.overlay.opaque is reported when configured for userxattr overlays")
    func userNamespaceOpaqueXattr() throws {
        let directory = try TemporaryDirectory(prefix: "starling-overlay")
        defer { directory.remove() }
        let content = try MountSupport.openContent(blob: MountSupport.fixtures + "/reference-estargz.blob")
        let options = FuseMountOptions(opaqueXattrNamespaces: ["trusted", "user"])
        try MountSupport.withMount(content, under: directory, options: options) { mountpoint, _ throws in
            for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
                var value = [UInt8](repeating: 0, count: 8)
                let length = getxattr(mountpoint + "/opaque", name, &value, value.count)
                #expect(length == 1 && value[0] == UInt8(ascii: "y"), "\(name) missing")
            }
            var value = [UInt8](repeating: 0, count: 8)
            #expect(getxattr(mountpoint + "/etc", "trusted.overlay.opaque", &value, value.count) == -1 && errno == ENODATA)
        }
    }

    private func names(_ path: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }
}
