/// An OCI content descriptor: what a manifest says about a config or layer blob.
public struct Descriptor: Sendable, Hashable, Codable {
    public var mediaType: String
    public var digest: String
    public var size: Int64
    /// Layer annotations, e.g. `containerd.io/snapshot/stargz/toc.digest`,
    /// `io.containers.estargz.uncompressed-size`,
    /// `io.github.containers.zstd-chunked.manifest-checksum`.
    public var annotations: [String: String]
    /// Alternative download locations (foreign layers).
    public var urls: [String]
    /// Set on index entries only.
    public var platform: Platform?
    /// What kind of artifact the described manifest is (referrers lists
    /// and the artifacts they name, e.g. a gzip layer index).
    public var artifactType: String?

    public init(mediaType: String, digest: String, size: Int64,
                annotations: [String: String] = [:], urls: [String] = [], platform: Platform? = nil,
                artifactType: String? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
        self.urls = urls
        self.platform = platform
        self.artifactType = artifactType
    }

    enum CodingKeys: String, CodingKey {
        case mediaType, digest, size, annotations, urls, platform, artifactType
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        mediaType = try container.decodeIfPresent(String.self, forKey: .mediaType) ?? ""
        digest = try container.decode(String.self, forKey: .digest)
        size = try container.decode(Int64.self, forKey: .size)
        annotations = try container.decodeIfPresent([String: String].self, forKey: .annotations) ?? [:]
        urls = try container.decodeIfPresent([String].self, forKey: .urls) ?? []
        platform = try container.decodeIfPresent(Platform.self, forKey: .platform)
        artifactType = try container.decodeIfPresent(String.self, forKey: .artifactType)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(mediaType, forKey: .mediaType)
        try container.encode(digest, forKey: .digest)
        try container.encode(size, forKey: .size)
        if !annotations.isEmpty { try container.encode(annotations, forKey: .annotations) }
        if !urls.isEmpty { try container.encode(urls, forKey: .urls) }
        try container.encodeIfPresent(platform, forKey: .platform)
        try container.encodeIfPresent(artifactType, forKey: .artifactType)
    }
}

/// Manifest and layer media types Starling understands.
public enum MediaType {
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    static let manifests = [ociManifest, dockerManifest]
    static let indexes = [ociIndex, dockerManifestList]
    /// The Accept header for manifest requests.
    static let acceptAll = (manifests + indexes).joined(separator: ", ")
}

/// A resolved image: one platform's manifest, verified against its digest.
public struct ResolvedImage: Sendable {
    /// The reference as given (tag and/or digest).
    public var reference: ImageReference
    /// Digest of the platform manifest (what `layers` come from).
    public var digest: String
    public var mediaType: String
    /// The manifest bytes exactly as fetched (their sha256 is `digest`).
    public var manifest: [UInt8]
    /// Digest of the index / manifest list the manifest was chosen from, if any.
    public var indexDigest: String?
    public var platform: Platform?
    public var config: Descriptor
    /// Layers in manifest order (base layer first).
    public var layers: [Descriptor]
    public var annotations: [String: String]
}
