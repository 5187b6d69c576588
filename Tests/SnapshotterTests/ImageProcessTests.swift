import Foundation
import LazyLayer
@testable import Snapshotter
import XCTest

/// What start-up read-ahead learns from an image's config.
final class ImageProcessTests: XCTestCase {
    func process(_ config: String) throws -> ImageProcess {
        try ImageProcess(config: Array(config.utf8))
    }

    func testTheProgramIsLookedUpAlongTheConfigsPath() throws {
        let process = try process(#"{"config":{"Entrypoint":["python3"],"Cmd":["app.py"],"Env":["LANG=C.UTF-8","PATH=/opt/bin:/usr/bin"]}}"#)
        XCTAssertEqual(process.startupHints, StartupHints(programCandidates: ["/opt/bin/python3", "/usr/bin/python3"],
                                                          locale: "C.UTF-8"))
    }

    func testAPathIsTakenAsItIsRelativeToTheWorkingDirectory() throws {
        XCTAssertEqual(try process(#"{"config":{"Cmd":["/bin/sh","-c","true"]}}"#).programCandidates, ["/bin/sh"])
        XCTAssertEqual(try process(#"{"config":{"Cmd":["./run"],"WorkingDir":"/app"}}"#).programCandidates, ["/app/./run"])
    }

    func testWithoutPathOrLocaleTheDefaultsApply() throws {
        let process = try process(#"{"config":{"Cmd":["sh"]}}"#)
        XCTAssertEqual(process.programCandidates.first, "/usr/local/sbin/sh")
        XCTAssertEqual(process.programCandidates.count, 6)
        XCTAssertNil(process.locale)
        XCTAssertEqual(try self.process(#"{"config":{"Env":["LANG=en_US.UTF-8","LC_ALL=de_DE.UTF-8"]}}"#).locale,
                       "de_DE.UTF-8", "LC_ALL wins over LANG")
    }

    func testNoCommandNoProgram() throws {
        XCTAssertEqual(try process(#"{"architecture":"amd64"}"#).programCandidates, [])
        XCTAssertThrowsError(try process("not json"))
    }
}

extension ImageProcessTests {
    func testAContainersRuntimeSpecGivesItsProcess() throws {
        let spec = #"{"ociVersion":"1.1.0","process":{"args":["python3","-c","print(1)"],"env":["PATH=/usr/bin:/bin","LANG=C.UTF-8"],"cwd":"/srv"}}"#
        let process = try ImageProcess(runtimeSpec: Array(spec.utf8))
        XCTAssertEqual(process.programCandidates, ["/usr/bin/python3", "/bin/python3"])
        XCTAssertEqual(process.workingDirectory, "/srv")
        XCTAssertEqual(process.locale, "C.UTF-8")
        XCTAssertEqual(try ImageProcess(runtimeSpec: Array("{}".utf8)).programCandidates, [])
    }
}
