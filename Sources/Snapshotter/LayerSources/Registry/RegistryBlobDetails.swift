/// What a record keeps of a layer read by range from a registry blob
/// (`RemoteLayerRecord.details`): the blob's repository and size, and the
/// digest of the metadata verified for it, under its source's key
/// (`tocDigest` for eStargz and zstd:chunked, `indexDigest` for a gzip
/// index). One type for both registry sources, so what reads records
/// without caring which source made them (status, credential retention)
/// finds the repository and size of each the same way.
struct RegistryBlobDetails: Equatable {
    /// `registry/repository` the blob is read from.
    var repository: String
    /// The TOC's or the index's digest.
    var metadataDigest: String
    var blobSize: Int64

    init(repository: String, metadataDigest: String, blobSize: Int64) {
        self.repository = repository
        self.metadataDigest = metadataDigest
        self.blobSize = blobSize
    }

    /// A record's details, its metadata digest under `metadataKey`.
    init(_ record: RemoteLayerRecord, metadataKey: String) throws {
        guard let location = Self.location(of: record), let digest = record.details[metadataKey] else {
            throw LayerSourceError("record of layer \(record.layerDigest) lacks repository, \(metadataKey) or blobSize")
        }
        self.init(repository: location.repository, metadataDigest: digest, blobSize: location.blobSize)
    }

    func dictionary(metadataKey: String) -> [String: String] {
        ["repository": repository, metadataKey: metadataDigest, "blobSize": "\(blobSize)"]
    }

    /// The repository and blob size of a record of either registry source;
    /// nil for a record of another source.
    static func location(of record: RemoteLayerRecord) -> (repository: String, blobSize: Int64)? {
        guard let repository = record.details["repository"],
              let size = record.details["blobSize"].flatMap(Int64.init) else { return nil }
        return (repository, size)
    }
}
