/// `username`/`password` of `[registry.host."NAME"]` in Starling's config.
struct ConfiguredCredentials: CredentialSource {
    let configuration: RegistryConfiguration
    var name: String { "[registry.host] config" }

    func credentials(registry: String, repository: String) throws(RegistryError) -> Credentials? {
        let host = configuration.host(registry)
        guard let username = host.username, let password = host.password else { return nil }
        return Credentials(username: username, password: password)
    }
}
