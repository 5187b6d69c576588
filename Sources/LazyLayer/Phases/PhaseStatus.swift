/// Where prefetch or background fetch of a layer stands.
enum PhaseStatus: Sendable, Equatable {
    case notStarted, running, done
    case disabled(String)
    case failed(String)

    /// Done, disabled or failed: nothing more will happen.
    var isFinished: Bool {
        switch self {
        case .done, .failed, .disabled: return true
        case .notStarted, .running: return false
        }
    }

    var text: String {
        switch self {
        case .notStarted: return "notStarted"
        case .running: return "running"
        case .done: return "done"
        case .disabled(let why): return "disabled: \(why)"
        case .failed(let why): return "failed: \(why)"
        }
    }
}
