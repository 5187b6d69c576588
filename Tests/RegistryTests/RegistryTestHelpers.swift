import Foundation
import Logging
import XCTest
@testable import Registry
import TestSupport

/// A client for a plain-HTTP loopback registry, with short timeouts so a
/// broken test fails fast instead of hanging.
func loopbackClient(_ hosts: [String], logger: Logger = Logger(label: "starling.registry"),
                    configure: (inout RegistryConfiguration) -> Void = { _ in }) -> RegistryClient {
    var config = RegistryConfiguration()
    config.insecureHosts = Set(hosts)
    config.connectTimeoutSeconds = 5
    config.transferTimeoutSeconds = 10
    config.retryBaseDelaySeconds = 0.02
    configure(&config)
    return RegistryClient(configuration: config, logger: logger)
}

/// A client of a loopback token registry (plain HTTP), logged in as `user`
/// when `password` is given, anonymous otherwise (docker's config.json is
/// kept out of it).
func tokenRegistryClient(_ registry: LocalRegistry, files: TemporaryDirectory, user: String, password: String?,
                         logger: Logger = Logger(label: "starling.registry")) -> RegistryClient {
    loopbackClient([registry.host], logger: logger) { config in
        config.maxRetries = 1
        config.dockerConfigPath = files.appending("absent-docker-config.json")
        if let password {
            var host = HostConfiguration()
            host.username = user
            host.password = password
            host.insecure = true
            config.hosts[registry.host] = host
        }
    }
}

/// Every log line (message and metadata) a logger wrote, at trace level,
/// so tests can check what never appears in logs.
final class CapturedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    var logger: Logger {
        var logger = Logger(label: "starling.registry.captured") { _ in CapturingHandler(log: self) }
        logger.logLevel = .trace
        return logger
    }

    var text: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }

    fileprivate func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }

    private struct CapturingHandler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            let all = self.metadata.merging(metadata ?? [:]) { $1 }
            log.append("\(level) \(message) \(all.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        }
    }
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
