import Config
import Foundation
import Logging
import Registry

/// The credential sources the daemon puts before Starling's config and
/// docker's (see `CredentialChain`): what CRI `PullImage` captured, then
/// kubelet's credential-provider plugins when configured.
struct DaemonCredentials: Sendable {
    let captured: CapturedCredentials
    let sources: [any CredentialSource]

    /// Where captured credentials persist: under the root, root's only.
    static func file(root: String) -> String { "\(root)/credentials/cri.json" }

    init(configuration: DaemonConfiguration, logger: Logger) throws(DaemonError) {
        captured = CapturedCredentials(file: Self.file(root: configuration.root), logger: logger)
        var sources: [any CredentialSource] = [captured]
        if let path = configuration.registry.credentialProviderConfig,
           let directory = configuration.registry.credentialProviderBinDirectory {
            do {
                let providers = try KubeletCredentialProviders(config: try CredentialProviderConfig(contentsOf: path),
                                                               binDirectory: directory, logger: logger)
                sources.append(providers)
                logger.info("kubelet credential providers", metadata: [
                    "config": "\(path)", "providers": "\(providers.config.providers.map(\.name).joined(separator: ","))"])
            } catch {
                throw DaemonError("registry.credential_provider_config: \(error)")
            }
        }
        self.sources = sources
    }
}
