import BlockingWork
import Foundation

/// Runs a credential program (a docker credential helper, a kubelet
/// credential-provider plugin): input on stdin, its stdout and stderr
/// collected, killed when it outlasts `timeout`. Its output is never logged
/// here: it holds secrets.
enum HelperProcess {
    struct Result: Sendable {
        var status: Int32
        var output: Data
        /// The start of stderr, for error messages (helpers print no secrets there).
        var errors: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func run(_ path: String, arguments: [String], environment: [String: String]? = nil, input: Data,
                    timeout: Double = 60) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        do {
            try process.run()
        } catch {
            throw Failure(description: "cannot start \(path): \(error.localizedDescription)")
        }
        // Readers first, so a program that writes much before reading
        // stdin cannot block on a full pipe.
        let output = Collected(), errors = Collected()
        let readers = DispatchGroup()
        for (pipe, sink) in [(stdout, output), (stderr, errors)] {
            readers.enter()
            DedicatedThread.start("starling-helper") {
                sink.set(pipe.fileHandleForReading.readDataToEndOfFile())
                readers.leave()
            }
        }
        try? stdin.fileHandleForWriting.write(contentsOf: input)
        try? stdin.fileHandleForWriting.close()
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            kill(process.processIdentifier, SIGKILL)
            exited.wait()
            readers.wait()
            throw Failure(description: "\(path) did not finish within \(Int(timeout)) s")
        }
        readers.wait()
        return Result(status: process.terminationStatus, output: output.value,
                      errors: String(decoding: errors.value.prefix(2000), as: UTF8.self))
    }

    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
        var value: Data { lock.lock(); defer { lock.unlock() }; return data }
    }
}
