import Foundation
import XCTest
@testable import Registry
import TestSupport

/// A client for a plain-HTTP loopback registry, with short timeouts so a
/// broken test fails fast instead of hanging.
func loopbackClient(_ hosts: [String], configure: (inout RegistryConfiguration) -> Void = { _ in }) -> RegistryClient {
    var config = RegistryConfiguration()
    config.insecureHosts = Set(hosts)
    config.connectTimeoutSeconds = 5
    config.transferTimeoutSeconds = 10
    config.retryBaseDelaySeconds = 0.02
    configure(&config)
    return RegistryClient(configuration: config)
}

/// Pushes `images` (an index when `asIndex`) to `registry` as `repository:tag`.
@discardableResult
func push(_ images: [TestImage], to registry: LocalRegistry, as repository: String, asIndex: Bool = false,
          skopeoArguments: [String] = []) throws -> (reference: ImageReference, layout: TestImageLayoutResult) {
    let work = try TemporaryDirectory(prefix: "starling-layout")
    let layout = try TestImageLayout.write(images, at: work.appending("layout"), tag: "t", asIndex: asIndex)
    let all = asIndex || images.count > 1 ? ["--all"] : []
    let pushed = try registry.push(layout.source, as: repository, extraArguments: all + skopeoArguments)
    return (try ImageReference(parsing: pushed), layout)
}

/// Asserts `body` throws a RegistryError matching `matches`, and returns it.
@discardableResult
func assertRegistryError<T>(_ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line,
                            _ matches: (RegistryError) -> Bool) -> RegistryError? {
    do {
        _ = try body()
        XCTFail("expected a RegistryError, got a result", file: file, line: line)
    } catch let error as RegistryError {
        XCTAssertTrue(matches(error), "unexpected error: \(error)", file: file, line: line)
        return error
    } catch {
        XCTFail("expected a RegistryError, got \(error)", file: file, line: line)
    }
    return nil
}
