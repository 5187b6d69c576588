import Foundation
import StargzReader
import Synchronization

/// Serves a layer straight from its blob through `StargzLayer`: every read
/// fetches and verifies the chunks it needs, with no cache, no prefetch and
/// no background fetch. Meant for local blob files (debugging, tests of the
/// filesystem itself); production mounts use `LazyLayer`.
public final class DirectLayerContent: LayerContentSource {
    public let layer: StargzLayer
    public let layerDigest: String
    private let counters = Mutex(Counters())

    private struct Counters {
        var readBytes: Int64 = 0
        var errors: [String] = []
    }

    public init(layer: StargzLayer, layerDigest: String) {
        self.layer = layer
        self.layerDigest = layerDigest
    }

    public var index: LayerIndex { layer.index }

    public func read(entry: EntryID, offset: Int64, length: Int) throws -> [UInt8] {
        do {
            let bytes = try layer.read(entry, range: offset..<(offset + Int64(length)))
            counters.withLock { $0.readBytes += Int64(bytes.count) }
            return bytes
        } catch {
            counters.withLock { counters in
                counters.errors.append("\(layer.index.path(of: entry)): \(error)")
                if counters.errors.count > 20 { counters.errors.removeFirst() }
            }
            throw error
        }
    }

    private struct State: Encodable {
        let digest: String
        let tocDigest: String
        let size: Int64
        let servedBytes: Int64
        let cached: Bool
        let errors: [String]
    }

    public func stateJSON() throws -> [UInt8] {
        let snapshot = counters.withLock { $0 }
        let state = State(digest: layerDigest, tocDigest: layer.tocDigest, size: layer.blobSize,
                          servedBytes: snapshot.readBytes, cached: false, errors: snapshot.errors)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(state)) + [UInt8(ascii: "\n")]
    }
}
