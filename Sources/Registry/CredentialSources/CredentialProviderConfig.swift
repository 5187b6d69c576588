import Foundation
import Yams

/// kubelet's `CredentialProviderConfig` file (`--image-credential-provider-config`),
/// YAML or JSON, read the way kubelet reads it, so one file serves both.
public struct CredentialProviderConfig: Sendable {
    public struct Provider: Sendable {
        /// The plugin's file name in the bin directory.
        public var name: String
        public var matchImages: [ImageMatchPattern]
        /// How long answers are kept when the plugin's answer names no duration.
        public var defaultCacheDuration: Double
        /// The `credentialprovider.kubelet.k8s.io` version the plugin speaks.
        public var apiVersion: String
        public var args: [String]
        public var env: [String: String]
    }

    public var providers: [Provider]

    static let configVersions = ["kubelet.config.k8s.io/v1", "kubelet.config.k8s.io/v1beta1", "kubelet.config.k8s.io/v1alpha1"]
    static let pluginVersions = ["credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1beta1",
                                 "credentialprovider.kubelet.k8s.io/v1alpha1"]

    public init(contentsOf path: String) throws(RegistryError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidConfiguration("credential_provider_config \(path) cannot be read")
        }
        try self.init(text: String(decoding: data, as: UTF8.self), origin: path)
    }

    public init(text: String, origin: String = "credential provider config") throws(RegistryError) {
        func failure(_ detail: String) -> RegistryError { .invalidConfiguration("\(origin): \(detail)") }
        let object: Any?
        do {
            object = try Yams.load(yaml: text)
        } catch {
            throw failure("not YAML or JSON: \(error)")
        }
        guard let top = object as? [String: Any] else { throw failure("must be a CredentialProviderConfig object") }
        guard top["kind"] as? String == "CredentialProviderConfig" else { throw failure("kind must be CredentialProviderConfig") }
        guard let version = top["apiVersion"] as? String, Self.configVersions.contains(version) else {
            throw failure("apiVersion must be one of \(Self.configVersions.joined(separator: ", "))")
        }
        let unknown = Set(top.keys).subtracting(["kind", "apiVersion", "providers"])
        guard unknown.isEmpty else { throw failure("unknown field \(unknown.sorted()[0])") }
        guard let list = top["providers"] as? [Any], !list.isEmpty else { throw failure("providers must be a non-empty list") }
        var providers: [Provider] = []
        var names = Set<String>()
        for (index, element) in list.enumerated() {
            let at = "providers[\(index)]"
            guard let entry = element as? [String: Any] else { throw failure("\(at) must be an object") }
            if entry["tokenAttributes"] != nil {
                throw failure("\(at).tokenAttributes: service-account tokens exist only inside kubelet; leave this provider out of the file Starling reads")
            }
            let extra = Set(entry.keys).subtracting(["name", "matchImages", "defaultCacheDuration", "apiVersion", "args", "env"])
            guard extra.isEmpty else { throw failure("\(at): unknown field \(extra.sorted()[0])") }
            guard let name = entry["name"] as? String, !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
                throw failure("\(at).name must be a file name in the bin directory (no '/')")
            }
            guard names.insert(name).inserted else { throw failure("\(at).name \(name) appears twice") }
            guard let images = entry["matchImages"] as? [Any], !images.isEmpty else {
                throw failure("\(at).matchImages must be a non-empty list")
            }
            var patterns: [ImageMatchPattern] = []
            for image in images {
                guard let text = image as? String else { throw failure("\(at).matchImages entries must be strings") }
                do {
                    patterns.append(try ImageMatchPattern(text))
                } catch {
                    throw failure("\(at).matchImages: \(error)")
                }
            }
            guard let durationText = entry["defaultCacheDuration"] as? String,
                  let duration = GoDuration.seconds(durationText), duration >= 0 else {
                throw failure("\(at).defaultCacheDuration must be a duration such as 12h, 30m or 0s")
            }
            guard let apiVersion = entry["apiVersion"] as? String, Self.pluginVersions.contains(apiVersion) else {
                throw failure("\(at).apiVersion must be one of \(Self.pluginVersions.joined(separator: ", "))")
            }
            let args: [String]
            if let value = entry["args"] {
                guard let list = value as? [Any], let strings = list.map({ $0 as? String }) as? [String] else {
                    throw failure("\(at).args must be a list of strings")
                }
                args = strings
            } else {
                args = []
            }
            var env: [String: String] = [:]
            if let value = entry["env"] {
                guard let list = value as? [Any] else { throw failure("\(at).env must be a list of {name, value}") }
                for variable in list {
                    guard let pair = variable as? [String: Any], let key = pair["name"] as? String, !key.isEmpty,
                          let text = pair["value"] as? String ?? (pair["value"].map { "\($0)" }) else {
                        throw failure("\(at).env entries must be {name, value}")
                    }
                    env[key] = text
                }
            }
            providers.append(Provider(name: name, matchImages: patterns, defaultCacheDuration: duration,
                                      apiVersion: apiVersion, args: args, env: env))
        }
        self.providers = providers
    }
}

/// Go's `time.Duration` text (`1h30m`, `10m0s`, `0.5s`, `300ms`), as
/// Kubernetes writes durations.
enum GoDuration {
    static func seconds(_ text: String) -> Double? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { return nil }
        if rest == "0" { return 0 }
        let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("h", 3600), ("m", 60), ("s", 1)]
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            guard let unit = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
            rest = rest.dropFirst(unit.0.count)
            total += value * unit.1
        }
        return total
    }
}
