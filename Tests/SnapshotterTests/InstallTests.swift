import Foundation
import TestSupport
import XCTest

/// `make install`, as the README installs Starling on a node (and as the
/// Kubernetes installer copies the binary onto one): the installed binary
/// carries no debug information and runs on a node without a Swift
/// toolchain, because the Swift runtime and Foundation are linked in. The
/// toolchain's runtime directory is hidden under an empty tmpfs, in a mount
/// namespace of the test's own.
final class InstallTests: XCTestCase {
    func testTheInstalledBinaryRunsWhereNoSwiftToolchainIs() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let destination = try TemporaryDirectory(prefix: "starling-install")
        defer { destination.remove() }
        // A scratch directory of its own: the running `swift test` holds
        // .build. The packages are in (`make test` installed them).
        try Command.check(["make", "-C", repository, "install", "DESTDIR=\(destination.path)", "SCRATCH=.build-install"],
                          environment: ["FORCE_UPDATE": "0"])
        let installed = destination.appending("usr/local/bin/starling")
        XCTAssertFalse(try Command.check(["readelf", "-S", "-W", installed]).contains(".debug_info"),
                       "the installed binary keeps its debug information")

        // Where this machine's Swift runtime is: this test process runs on
        // it. (procfs files have no size, which Foundation's reader trusts.)
        let maps = try Command.check(["cat", "/proc/\(getpid())/maps"])
        let runtime = try XCTUnwrap(maps.split(separator: "\n").lazy.compactMap { $0.split(separator: " ").last }
            .first { $0.hasSuffix("/libswiftCore.so") }, "no Swift runtime mapped")
        let runtimeDirectory = (String(runtime) as NSString).deletingLastPathComponent
        func withoutToolchain(_ binary: String) throws -> CommandResult {
            try Command.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             "mount -t tmpfs none \"$1\" && ! test -e \"$1/libswiftCore.so\" && exec \"$2\" --version",
                             "hide", runtimeDirectory, binary])
        }
        let result = try withoutToolchain(installed)
        XCTAssertTrue(result.succeeded, result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("starling "), result.stdout)
    }
}
