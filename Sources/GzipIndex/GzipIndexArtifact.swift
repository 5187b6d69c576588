import Basics
import Foundation

/// How seekable gzip indexes travel: one OCI image manifest per image,
/// whose `subject` is the image's manifest, its config the empty
/// descriptor, and one blob (`layerMediaType`) per indexed layer, annotated
/// with that layer's digest. The registry lists it as a referrer of the
/// image (the referrers API, or the referrers tag), so the image itself
/// stays untouched and every other runtime pulls it as before.
public enum GzipIndexArtifact {
    public static let artifactType = "application/vnd.starling.gzip-index.v1"
    /// The media type of each index blob.
    public static let layerMediaType = "application/vnd.starling.gzip-index.v1+binary"
    /// On each index blob: the digest of the layer it indexes.
    public static let layerAnnotation = "io.starling.gzip-index.layer"
    /// On the artifact manifest, and so on its descriptor in the image's
    /// referrers list (the API copies a manifest's annotations there; the
    /// referrers tag gets them from the pusher): every entry, as JSON,
    /// with the blob ranges its layer's prioritized files need
    /// (`GzipSeekIndex.prefetchRanges`, `OFFSET+LENGTH` joined by commas).
    /// A daemon then fetches the layer's index straight from the list, one
    /// round trip before the artifact manifest would have named it, and
    /// reads those ranges while the index comes. Nothing in it is trusted:
    /// the index blob is fetched by digest and must name the layer, its
    /// size and diff ID itself, and the ranges are only bytes until the
    /// index's chunk digests have verified them.
    public static let entriesAnnotation = "io.starling.gzip-index.entries"
    /// Prefetch ranges read from one entry at most; a longer list is ignored.
    public static let maxPrefetchRanges = 4096
    /// The empty config descriptor (`{}`), as the image spec defines it for artifacts.
    public static let emptyConfigMediaType = "application/vnd.oci.empty.v1+json"
    public static let emptyConfig: [UInt8] = Array("{}".utf8)
    public static let emptyConfigDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    /// Layer media types an index can be built for: plain tar+gzip.
    public static let gzipLayerMediaTypes: Set<String> = [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ]
    /// Largest artifact manifest read (they list one blob per layer).
    public static let manifestLimit = 4 << 20

    /// One index blob of the artifact.
    public struct Entry: Sendable, Equatable {
        /// The indexed layer.
        public var layerDigest: String
        /// The index blob.
        public var digest: String
        public var size: Int64
        /// What the layer's prefetch will read (`entriesAnnotation`), empty when not said.
        public var prefetchRanges: [Range<Int64>]

        public init(layerDigest: String, digest: String, size: Int64, prefetchRanges: [Range<Int64>] = []) {
            self.layerDigest = layerDigest
            self.digest = digest
            self.size = size
            self.prefetchRanges = prefetchRanges
        }
    }

    /// `ranges` as `entriesAnnotation` writes them.
    static func encodePrefetch(_ ranges: [Range<Int64>]) -> String {
        ranges.map { "\($0.lowerBound)+\($0.count)" }.joined(separator: ",")
    }

    /// The ranges of an entry's prefetch list: sorted, apart, non-empty,
    /// at most `maxPrefetchRanges`; empty for anything else.
    static func decodePrefetch(_ text: String) -> [Range<Int64>] {
        var ranges: [Range<Int64>] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "+", omittingEmptySubsequences: false)
            guard ranges.count < maxPrefetchRanges, parts.count == 2, let start = Int64(parts[0]), let length = Int64(parts[1]),
                  start >= 0, length > 0, start <= Int64.max - length, start >= (ranges.last?.upperBound ?? 0) else { return [] }
            ranges.append(start..<(start + length))
        }
        return ranges
    }

    /// The manifest that names `entries` and points at `subject` (the
    /// image manifest's media type, digest and size).
    public static func manifest(entries: [Entry], subjectMediaType: String, subjectDigest: String,
                                subjectSize: Int64) throws -> [UInt8] {
        let document = Manifest(
            artifactType: artifactType,
            config: .init(mediaType: emptyConfigMediaType, digest: emptyConfigDigest, size: Int64(emptyConfig.count),
                          data: Data(emptyConfig).base64EncodedString()),
            layers: entries.map {
                .init(mediaType: layerMediaType, digest: $0.digest, size: $0.size,
                      annotations: [layerAnnotation: $0.layerDigest])
            },
            subject: .init(mediaType: subjectMediaType, digest: subjectDigest, size: subjectSize),
            annotations: try annotations(for: entries))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(document))
    }

    /// `entriesAnnotation` for `entries`.
    public static func annotations(for entries: [Entry]) throws -> [String: String] {
        let listed = entries.map {
            ListedEntry(layer: $0.layerDigest, index: $0.digest, size: $0.size,
                        prefetch: $0.prefetchRanges.isEmpty ? nil : encodePrefetch($0.prefetchRanges))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return [entriesAnnotation: String(decoding: try encoder.encode(listed), as: UTF8.self)]
    }

    /// The entries a referrer's `entriesAnnotation` lists, or nil when it
    /// has none, or one that does not decode to well-formed entries.
    public static func entries(inAnnotations annotations: [String: String]?) -> [Entry]? {
        guard let text = annotations?[entriesAnnotation], text.utf8.count <= manifestLimit,
              let listed = try? JSONDecoder().decode([ListedEntry].self, from: Data(text.utf8)) else { return nil }
        let entries = listed.map {
            Entry(layerDigest: $0.layer, digest: $0.index, size: $0.size, prefetchRanges: $0.prefetch.map(decodePrefetch) ?? [])
        }
        guard !entries.isEmpty, entries.allSatisfy({
            SHA256Digest(parsing: $0.layerDigest) != nil && SHA256Digest(parsing: $0.digest) != nil && $0.size > 0
        }) else { return nil }
        return entries
    }

    private struct ListedEntry: Codable {
        var layer: String
        var index: String
        var size: Int64
        var prefetch: String?
    }

    /// The entries of an artifact manifest, checked to be one of ours and
    /// to point at `subjectDigest`; throws `GzipIndexError.malformed` otherwise.
    public static func entries(inManifest bytes: [UInt8], subjectDigest: String) throws -> [Entry] {
        guard bytes.count <= manifestLimit else {
            throw GzipIndexError.limitExceeded(check: "artifact manifest", detail: "\(bytes.count) bytes")
        }
        let document: Manifest
        do {
            document = try JSONDecoder().decode(Manifest.self, from: Data(bytes))
        } catch {
            throw GzipIndexError.malformed(check: "artifact manifest", detail: "does not decode: \(error)")
        }
        guard document.artifactType == artifactType else {
            throw GzipIndexError.malformed(check: "artifact type", detail: "\(document.artifactType ?? "none"), not \(artifactType)")
        }
        guard document.subject?.digest == subjectDigest else {
            throw GzipIndexError.malformed(check: "artifact subject",
                                           detail: "made for \(document.subject?.digest ?? "no image"), not \(subjectDigest)")
        }
        // The prefetch ranges live in the entries annotation only; the
        // layers themselves say which index is which layer's.
        let listed = entries(inAnnotations: document.annotations) ?? []
        return document.layers.compactMap { layer in
            guard layer.mediaType == layerMediaType, let indexed = layer.annotations?[layerAnnotation] else { return nil }
            let ranges = listed.first { $0.layerDigest == indexed && $0.digest == layer.digest }?.prefetchRanges ?? []
            return Entry(layerDigest: indexed, digest: layer.digest, size: layer.size, prefetchRanges: ranges)
        }
    }

    private struct Manifest: Codable {
        var schemaVersion = 2
        var mediaType = "application/vnd.oci.image.manifest.v1+json"
        var artifactType: String?
        var config: Blob
        var layers: [Blob]
        var subject: Blob?
        var annotations: [String: String]?
    }

    private struct Blob: Codable {
        var mediaType: String
        var digest: String
        var size: Int64
        var annotations: [String: String]? = nil
        var data: String? = nil
    }
}
