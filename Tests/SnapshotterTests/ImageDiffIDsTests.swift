import Foundation
@testable import Snapshotter
import TestSupport
import XCTest

/// Chain IDs name the snapshots containerd commits for an image's layers:
/// a wrong one would open layers containerd never asks for, or none.
final class ImageDiffIDsTests: XCTestCase {
    func testChainIDsFollowTheImageSpec() throws {
        let diffIDs = ["a", "b", "c"].map { "sha256:" + String(repeating: $0, count: 64) }
        // The spec's rule, computed by coreutils: ChainID(n) = SHA256(ChainID(n-1) + " " + DiffID(n)).
        func sha256(_ text: String) throws -> String {
            let file = NSTemporaryDirectory() + "chain-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: file) }
            try text.write(toFile: file, atomically: false, encoding: .utf8)
            return "sha256:" + String(try Command.check(["sha256sum", file]).prefix(64))
        }
        let second = try sha256("\(diffIDs[0]) \(diffIDs[1])")
        let third = try sha256("\(second) \(diffIDs[2])")
        XCTAssertEqual(ImageDiffIDs.chainIDs(diffIDs), [diffIDs[0], second, third])
        XCTAssertEqual(ImageDiffIDs.chainIDs([]), [])
    }
}
