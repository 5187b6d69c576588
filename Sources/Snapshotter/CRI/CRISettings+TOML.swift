import Registry
import TOMLKit

extension CRISettings {
    /// `[cri]` of the config file (moves to the Config module with the rest of the parsing).
    init(toml table: TOMLTable) throws {
        self.init()
        let reader = TOMLTableReader(table: table, path: "cri")
        try reader.allowOnly(["address", "containerd_address"])
        if let value = try reader.string("address") {
            address = value.isEmpty ? "" : try DaemonConfiguration.absolute(value, key: "cri.address")
        }
        if let value = try reader.string("containerd_address") {
            containerdAddress = try DaemonConfiguration.absolute(value, key: "cri.containerd_address")
        }
    }
}
