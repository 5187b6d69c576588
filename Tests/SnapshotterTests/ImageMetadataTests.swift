import Foundation
import Logging
import Registry
@testable import Snapshotter
import TestSupport
import XCTest

/// Manifests and configs are fetched once per image: a Prepare that names
/// the image by tag and manifest digest (CRI's labels) is answered from
/// what a fetch by tag alone brought (the pull-ahead's, or an rpull's).
final class ImageMetadataTests: XCTestCase {
    func testATagAndItsPinnedFormShareOneFetch() throws {
        let work = try TemporaryDirectory(prefix: "starling-metadata")
        defer { work.remove() }
        let (layer, _) = try RegistryLayerSourceTests.helloLayer(in: work)
        let registry = try LocalRegistry()
        defer { registry.stop() }
        _ = try TestImageLayout.write([TestImage(layers: [layer])], at: work.appending("layout"), tag: "img")
        try registry.push("oci:\(work.appending("layout")):img", as: "metadata/test:1")
        var configuration = RegistryConfiguration()
        configuration.insecureHosts = [registry.host]
        let client = RegistryClient(configuration: configuration)
        let images = ImageMetadata(client: client, logger: Logger(label: "test"))

        let tag = try ImageReference(parsing: "\(registry.host)/metadata/test:1")
        let resolved = try images.manifest(tag).get()
        let config = try images.config(tag).get()
        let requests = client.statistics.requests
        var pinned = tag
        pinned.digest = resolved.digest
        XCTAssertEqual(try images.manifest(pinned).get().digest, resolved.digest)
        XCTAssertEqual(try images.config(pinned).get(), config)
        XCTAssertEqual(client.statistics.requests, requests, "the pinned form asked the registry again")
    }
}
