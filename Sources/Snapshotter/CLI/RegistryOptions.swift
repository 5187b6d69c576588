import ArgumentParser
import Foundation
import Registry
import TOMLKit

/// Options shared by every command that talks to a registry
/// (`layer inspect/extract` on a registry blob, `layer mount`, `serve`):
/// the config file whose `[registry]` table configures access, and
/// `--insecure-registry HOST:PORT` for plain-HTTP registries.
struct RegistryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Starling config file (TOML); its [registry] table configures registry access.",
                                            valueName: "FILE"))
    var config: String?

    @Option(name: .customLong("insecure-registry"),
            help: ArgumentHelp("Reach this registry over plain HTTP (repeatable; for loopback and test registries).",
                               valueName: "HOST:PORT"))
    var insecureRegistries: [String] = []

    /// The `[registry]` table of `--config` (defaults without one) plus the insecure registries.
    func registryConfiguration() throws -> RegistryConfiguration {
        var configuration = RegistryConfiguration()
        if let config {
            let text: String
            do {
                text = try String(contentsOfFile: config, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read config file \(config): \(error.localizedDescription)")
            }
            let table: TOMLTable
            do {
                table = try TOMLTable(string: text)
            } catch {
                throw ValidationError("config file \(config) is not valid TOML: \(error)")
            }
            if let registry = table["registry"] {
                guard let registryTable = registry.table else {
                    throw ValidationError("\(config): [registry] must be a table")
                }
                configuration = try RegistryConfiguration(toml: registryTable)
            }
        }
        configuration.insecureHosts.formUnion(insecureRegistries)
        return configuration
    }

    func makeClient() throws -> RegistryClient {
        RegistryClient(configuration: try registryConfiguration())
    }

    /// A `REGISTRY/REPOSITORY@sha256:DIGEST` argument as a lazily read blob,
    /// or nil when `argument` is not such a reference (a local path).
    func registryBlob(_ argument: String, client: RegistryClient) throws -> RegistryBlobSource? {
        guard argument.contains("@"), !FileManager.default.fileExists(atPath: argument),
              let reference = try? ImageReference(parsing: argument), let digest = reference.digest else { return nil }
        return try client.blobSource(reference, digest: digest)
    }
}
