import BlockingWork
import GRPCCore
import GRPCShim

/// `starling.status.v1.Status` on the daemon's socket (root-only by its
/// mode, like the snapshots API beside it).
struct StatusService: Starling_Status_V1_Status.SimpleServiceProtocol {
    let collector: StatusCollector

    func getStatus(request: Starling_Status_V1_GetStatusRequest,
                   context: ServerContext) async throws -> Starling_Status_V1_GetStatusResponse {
        // SQLite and the layers' locks block: off Swift's cooperative pool.
        try await withCheckedThrowingContinuation { continuation in
            BlockingWorkPool.shared.async {
                continuation.resume(with: Result { try collector.collect() })
            }
        }
    }
}
