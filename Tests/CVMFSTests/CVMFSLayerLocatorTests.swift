import XCTest
import Foundation
@testable import CVMFSBackend
import TestSupport

/// The locator against a directory laid out exactly like unpacked.cern.ch
/// (`.layers/<2 hex>/<hex>/layerfs`), and against missing or stalled mounts.
final class CVMFSLayerLocatorTests: XCTestCase {
    let digest = "sha256:" + String(repeating: "ab", count: 32)

    func testFindsUnpackedLayerByCompressedDigest() throws {
        let repo = try TemporaryDirectory(prefix: "cvmfs")
        let hex = String(digest.dropFirst(7))
        let layerfs = repo.appending(".layers/ab/\(hex)/layerfs")
        try FileManager.default.createDirectory(atPath: layerfs + "/usr/bin", withIntermediateDirectories: true)
        try "hello\n".write(toFile: layerfs + "/usr/bin/hello", atomically: true, encoding: .utf8)

        let locator = CVMFSLayerLocator(configuration: .init(mountpoint: repo.path))
        XCTAssertEqual(locator.locate(layerDigest: digest), .found(directory: layerfs))
        // The directory returned is the layer's root: its files are there.
        guard case .found(let dir) = locator.locate(layerDigest: digest) else { return XCTFail() }
        XCTAssertEqual(try String(contentsOfFile: dir + "/usr/bin/hello", encoding: .utf8), "hello\n")
    }

    func testLayerNotInRepositoryIsAbsent() throws {
        let repo = try TemporaryDirectory(prefix: "cvmfs")
        try FileManager.default.createDirectory(atPath: repo.appending(".layers"), withIntermediateDirectories: true)
        let locator = CVMFSLayerLocator(configuration: .init(mountpoint: repo.path))
        XCTAssertEqual(locator.locate(layerDigest: digest), .absent)
    }

    func testMissingMountIsUnavailableWithReason() {
        let locator = CVMFSLayerLocator(configuration: .init(repository: "unpacked.example.org",
                                                             mountpoint: "/nonexistent/cvmfs/unpacked.example.org"))
        guard case .unavailable(let reason) = locator.locate(layerDigest: digest) else {
            return XCTFail("a missing CVMFS mount must be a fallback, not a lookup result")
        }
        XCTAssertTrue(reason.contains("not mounted"), reason)
        XCTAssertTrue(reason.contains("unpacked.example.org"), reason)
    }

    func testDisabledNeverTouchesTheFilesystem() {
        let locator = CVMFSLayerLocator(configuration: .init(enabled: false, mountpoint: "/"))
        XCTAssertEqual(locator.locate(layerDigest: digest), .unavailable(reason: "CVMFS lookups are disabled"))
    }

    func testMalformedDigestsNeverBecomePaths() throws {
        let repo = try TemporaryDirectory(prefix: "cvmfs")
        let locator = CVMFSLayerLocator(configuration: .init(mountpoint: repo.path))
        for bad in ["sha256:../../etc", "sha256:" + String(repeating: "A", count: 64), "md5:abcd",
                    "sha256:" + String(repeating: "a", count: 63), "", "sha256:" + String(repeating: "a", count: 62) + "/.."] {
            XCTAssertNil(locator.layerDirectory(for: bad), bad)
            guard case .unavailable = locator.locate(layerDigest: bad) else { return XCTFail("accepted \(bad)") }
        }
    }

    func testDefaultMountpointFollowsRepository() {
        XCTAssertEqual(CVMFSConfiguration().mountpoint, "/cvmfs/unpacked.cern.ch")
        XCTAssertEqual(CVMFSConfiguration(repository: "unpacked.example.org").mountpoint, "/cvmfs/unpacked.example.org")
        let locator = CVMFSLayerLocator(configuration: .init())
        XCTAssertEqual(locator.layerDirectory(for: digest),
                       "/cvmfs/unpacked.cern.ch/.layers/ab/\(digest.dropFirst(7))/layerfs")
    }

    /// A stalled autofs mount blocks `stat`; the lookup body is run under a
    /// timeout, modelled here by a body that blocks, so a pull falls back
    /// instead of hanging.
    func testTimeoutTurnsAStallIntoNil() {
        let started = Date()
        let value: Int? = CVMFSLayerLocator.withTimeout(0.2) { sleep(3); return 1 }
        XCTAssertNil(value)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2.5)
        XCTAssertEqual(CVMFSLayerLocator.withTimeout(2) { 7 }, 7)
    }
}
