import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCShim
import Logging
import Registry

/// CRI's `runtime.v1.ImageService`, served to kubelet and forwarded call by
/// call to containerd's CRI plugin, which does the pulling, unpacking and
/// image bookkeeping. On the way, `PullImage` leaves its credentials with
/// `CredentialCapture` *before* containerd starts the pull: containerd's
/// unpack asks Starling for each layer while the call runs, and those lazy
/// layers are then read with the image's own credentials. It also starts
/// opening the image's layers (`PullAhead`) while containerd resolves it.
///
/// Statuses and messages come back from containerd unchanged; a containerd
/// that is down answers Unavailable, which kubelet retries. Fields this
/// proxy's .proto leaves out travel as unknown fields, untouched.
struct CRIImageProxy: Runtime_V1_ImageService.SimpleServiceProtocol {
    let containerd: Runtime_V1_ImageService.Client<HTTP2ClientTransport.Posix>
    let capture: CredentialCapture
    let pullAhead: PullAhead?
    let logger: Logger

    func listImages(request: Runtime_V1_ListImagesRequest, context: ServerContext) async throws -> Runtime_V1_ListImagesResponse {
        try await forwarded("ListImages") { try await containerd.listImages(request) }
    }

    func imageStatus(request: Runtime_V1_ImageStatusRequest, context: ServerContext) async throws -> Runtime_V1_ImageStatusResponse {
        try await forwarded("ImageStatus") { try await containerd.imageStatus(request) }
    }

    func pullImage(request: Runtime_V1_PullImageRequest, context: ServerContext) async throws -> Runtime_V1_PullImageResponse {
        let kept = capture.keep(request)
        pullAhead?.imageRequested(request.image.image)
        let response = try await forwarded("PullImage") { try await containerd.pullImage(request) }
        // Image and whether credentials came, never the credentials.
        logger.info("CRI pull done", metadata: [
            "image": "\(request.image.image)", "imageRef": "\(response.imageRef)", "withCredentials": "\(kept)"])
        return response
    }

    func removeImage(request: Runtime_V1_RemoveImageRequest, context: ServerContext) async throws -> Runtime_V1_RemoveImageResponse {
        try await forwarded("RemoveImage") { try await containerd.removeImage(request) }
    }

    func imageFsInfo(request: Runtime_V1_ImageFsInfoRequest, context: ServerContext) async throws -> Runtime_V1_ImageFsInfoResponse {
        try await forwarded("ImageFsInfo") { try await containerd.imageFsInfo(request) }
    }

    /// containerd's answer, or its error as it gave it (an error of the
    /// connection itself becomes Unavailable naming containerd's socket).
    private func forwarded<Response: Sendable>(_ method: String, _ call: () async throws -> Response) async throws -> Response {
        do {
            return try await call()
        } catch let error as RPCError {
            logger.debug("CRI call failed in containerd", metadata: ["method": "\(method)", "code": "\(error.code)",
                                                                     "error": "\(error.message)"])
            // Code and message only: the metadata of containerd's answer
            // holds its response headers (content-type), which a trailer
            // must not repeat; sent back, they reset the stream and kubelet
            // saw "Stream unexpectedly closed" instead of NotFound.
            throw RPCError(code: error.code, message: error.message)
        } catch {
            throw RPCError(code: .unavailable, message: "containerd's CRI service cannot be reached: \(error)")
        }
    }
}
