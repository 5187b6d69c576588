import Basics
import Foundation

/// The `rootfs.diff_ids` of an image config: the digest of each layer's
/// uncompressed tar, what an index or an unpack must match before its
/// layer is used.
enum ImageDiffIDs {
    static func parse(_ config: [UInt8]) throws -> [String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(config)) as? [String: Any],
              let rootfs = object["rootfs"] as? [String: Any], let ids = rootfs["diff_ids"] as? [String] else {
            throw ImageDiffIDsError()
        }
        return ids
    }

    /// The diff IDs of a manifest with `layerCount` layers: one per layer,
    /// or an error.
    static func all(layerCount: Int, config: [UInt8]) throws -> [String] {
        let ids = try parse(config)
        guard ids.count == layerCount else {
            throw ImageDiffIDsError(detail: "the config lists \(ids.count) diff IDs for \(layerCount) layers")
        }
        return ids
    }

    /// The diff ID of the layer at `layerIndex` of a manifest with `layerCount` layers.
    static func of(layer layerIndex: Int, layerCount: Int, config: [UInt8]) throws -> String {
        let ids = try all(layerCount: layerCount, config: config)
        guard ids.indices.contains(layerIndex) else {
            throw ImageDiffIDsError(detail: "no layer \(layerIndex) among \(layerCount)")
        }
        return ids[layerIndex]
    }

    /// The chain ID of each layer over the ones below it (OCI image spec:
    /// the first layer's is its diff ID, each next one the digest of
    /// "<chain ID below> <diff ID>"): the names containerd gives the
    /// committed snapshots of an image's layers.
    static func chainIDs(_ diffIDs: [String]) -> [String] {
        var result: [String] = []
        result.reserveCapacity(diffIDs.count)
        for diffID in diffIDs {
            guard let below = result.last else {
                result.append(diffID)
                continue
            }
            result.append(SHA256Digest.of("\(below) \(diffID)".utf8).description)
        }
        return result
    }
}

struct ImageDiffIDsError: Error, CustomStringConvertible {
    var detail = "the config has no rootfs.diff_ids"
    var description: String { detail }
}
