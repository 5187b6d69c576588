import Dispatch
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCShim
import Synchronization

/// The project's CRI image-service client: the calls kubelet makes, on a
/// CRI socket (Starling's proxy, or containerd's own), from the .proto in
/// Sources/GRPCShim/Protos/runtime/v1.
struct CRIClient {
    let socket: String

    func pull(_ image: String, auth: Runtime_V1_AuthConfig? = nil,
              sandbox: Runtime_V1_PodSandboxConfig? = nil) throws -> String {
        var request = Runtime_V1_PullImageRequest()
        request.image.image = image
        if let auth { request.auth = auth }
        if let sandbox { request.sandboxConfig = sandbox }
        let message = request
        return try call { try await $0.pullImage(message).imageRef }
    }

    func status(_ image: String, verbose: Bool = false) throws -> Runtime_V1_ImageStatusResponse {
        try call { try await $0.imageStatus(.with { $0.image.image = image; $0.verbose = verbose }) }
    }

    func list() throws -> [Runtime_V1_Image] {
        try call { try await $0.listImages(.init()).images }
    }

    func remove(_ image: String) throws {
        _ = try call { try await $0.removeImage(.with { $0.image.image = image }) }
    }

    func fsInfo() throws -> Runtime_V1_ImageFsInfoResponse {
        try call { try await $0.imageFsInfo(.init()) }
    }

    static func auth(username: String, password: String) -> Runtime_V1_AuthConfig {
        .with {
            $0.username = username
            $0.password = password
        }
    }

    private func call<T: Sendable>(_ body: @escaping @Sendable (Runtime_V1_ImageService.Client<HTTP2ClientTransport.Posix>) async throws -> T) throws -> T {
        let socket = self.socket
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do {
                // kubelet's limit; grpc-swift's transport applies it to responses too.
                let transport = try HTTP2ClientTransport.Posix(
                    target: .unixDomainSocket(path: socket), transportSecurity: .plaintext,
                    serviceConfig: ServiceConfig(methodConfig: [MethodConfig(names: [MethodConfig.Name(service: "")],
                                                                             maxRequestMessageBytes: 16 << 20)]))
                let value = try await withGRPCClient(transport: transport) { client in
                    try await body(Runtime_V1_ImageService.Client(wrapping: client))
                }
                outcome.withLock { $0 = .success(value) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        return try outcome.withLock { $0! }.get()
    }
}
