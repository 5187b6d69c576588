import Foundation
import GRPCShim

/// `starling status --json`: every field always present (protobuf's JSON
/// leaves out zeros and empty strings, which scripts would read as missing).
enum StatusJSON {
    static func render(_ status: Starling_Status_V1_GetStatusResponse) throws -> String {
        let cache = status.cache
        let object: [String: Any] = [
            "version": status.version, "uptimeSeconds": status.uptimeSeconds, "pid": status.pid,
            "descriptorStoreEnabled": status.descriptorStoreEnabled,
            "storedFuseConnections": status.storedFuseConnections,
            "cache": ["memoryBytes": cache.memoryBytes, "memoryCapacityBytes": cache.memoryCapacityBytes,
                      "diskBytes": cache.diskBytes, "diskCapacityBytes": cache.diskCapacityBytes,
                      "hits": cache.hits, "misses": cache.misses],
            "images": status.images.map { image -> [String: Any] in
                ["reference": image.reference, "layers": image.layers.map { layer -> [String: Any] in
                    ["digest": layer.digest, "source": layer.source, "size": layer.size,
                     "fetchedBytes": layer.fetchedBytes, "dataBytes": layer.dataBytes,
                     "fetchedPercent": layer.fetchedPercent, "prefetch": layer.prefetch,
                     "background": layer.background, "requests": layer.requests, "errors": layer.errors,
                     "lastError": layer.lastError, "snapshot": layer.snapshot, "mounted": layer.mounted,
                     "connectionStored": layer.connectionStored, "directory": layer.directory]
                }]
            },
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
