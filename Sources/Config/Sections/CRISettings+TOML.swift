extension CRISettings {
    /// `[cri]`
    public init(toml section: TOMLSection) throws(ConfigError) {
        self.init()
        try section.allowOnly(["address", "containerd_address"])
        if let value = try section.string("address") {
            address = value.isEmpty ? "" : try TOMLSection.absolute(value, key: section.qualified("address"))
        }
        if let value = try section.absolutePath("containerd_address") { containerdAddress = value }
    }
}
