import Foundation

/// When a lazy layer whose mount failed in the background (a restart while
/// its registry or CVMFS server was unreachable) is tried again.
///
/// The source may come back at any time, so a mount is not given up for
/// good; but every Prepare, View and Mounts on the image asks for it, and a
/// node starting many containers must not turn that into a storm of
/// requests to a registry that is down. So the next try waits 1 s after the
/// first failure, twice as long after each further one, 30 s at most; a
/// request that comes before then is refused at once with the last reason.
struct RemountBackoff: Sendable {
    static let firstDelay: Double = 1
    static let longestDelay: Double = 30

    private(set) var failures = 0
    private(set) var nextTry = Date.distantPast

    /// Records a failed try that ended at `now`.
    mutating func failed(at now: Date = Date()) {
        failures += 1
        nextTry = now.addingTimeInterval(delay)
    }

    /// The wait after the failures so far.
    var delay: Double {
        min(Self.longestDelay, Self.firstDelay * pow(2, Double(max(0, failures - 1))))
    }

    func allowsTry(at now: Date = Date()) -> Bool { now >= nextTry }
}
