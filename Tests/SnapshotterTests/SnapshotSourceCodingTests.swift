import Foundation
@testable import Snapshotter
import XCTest

/// Snapshot rows keep where a layer's files come from as JSON. Rows written
/// before layer sources existed must still read, or an upgraded daemon
/// would lose the lazy layers running containers use.
final class SnapshotSourceCodingTests: XCTestCase {
    func decode(_ json: String) throws -> SnapshotSource {
        try JSONDecoder().decode(SnapshotSource.self, from: Data(json.utf8))
    }

    func testRowsOfEarlierReleasesStillRead() throws {
        let digest = "sha256:" + String(repeating: "b", count: 64)
        let lazy = try decode("""
            {"lazy":{"_0":{"repository":"127.0.0.1:5000/app","layerDigest":"\(digest)","tocDigest":"sha256:\(String(repeating: "c", count: 64))","blobSize":1234}}}
            """)
        let record = try XCTUnwrap(lazy.remote)
        XCTAssertEqual(record.source, "registry")
        XCTAssertTrue(record.isMountedLazily)
        let details = try RegistryBlobDetails(record, metadataKey: RegistryLayerSource.metadataKey)
        XCTAssertEqual(details, RegistryBlobDetails(repository: "127.0.0.1:5000/app",
                                                    metadataDigest: "sha256:" + String(repeating: "c", count: 64), blobSize: 1234))
        let cvmfs = try decode(#"{"cvmfs":{"directory":"/cvmfs/unpacked.cern.ch/.layers/bb/x/layerfs","layerDigest":"\#(digest)"}}"#)
        XCTAssertEqual(cvmfs.remote, RemoteLayerRecord(source: "cvmfs", layerDigest: digest,
                                                       directories: ["/cvmfs/unpacked.cern.ch/.layers/bb/x/layerfs"]))
        XCTAssertEqual(try decode(#"{"local":{}}"#), .local)
        XCTAssertThrowsError(try decode(#"{"elsewhere":{}}"#))
    }

    func testWhatIsWrittenReadsBack() throws {
        let record = RemoteLayerRecord(source: "registry", layerDigest: "sha256:" + String(repeating: "d", count: 64),
                                       directories: nil, details: ["repository": "r/x", "tocDigest": "t", "blobSize": "9"])
        for source in [SnapshotSource.local, .remote(record)] {
            XCTAssertEqual(try JSONDecoder().decode(SnapshotSource.self, from: try JSONEncoder().encode(source)), source)
        }
    }
}
