extension CRISettings {
    /// `[cri]`
    public init(toml section: TOMLSection) throws(ConfigError) {
        self.init()
        try section.allowOnly(["address", "containerd_address", "open_layers_on_pull"])
        if let value = try section.string("address") {
            address = value.isEmpty ? "" : try TOMLSection.absolute(value, key: section.qualified("address"))
        }
        if let value = try section.absolutePath("containerd_address") { containerdAddress = value }
        if let value = try section.bool("open_layers_on_pull") { openLayersOnPull = value }
    }
}
