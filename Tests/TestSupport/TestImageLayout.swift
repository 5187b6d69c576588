import Crypto
import Foundation

/// A layer blob made for a test: a real gzip'd tar holding pseudo-random
/// files, so pushes, format conversions and range reads see realistic bytes.
public struct TestLayer: Sendable {
    public var blob: [UInt8]
    /// sha256 of `blob`.
    public var digest: String
    /// sha256 of the uncompressed tar (the config's diff_id).
    public var diffID: String
    public var annotations: [String: String] = [:]
    public var mediaType = "application/vnd.oci.image.layer.v1.tar+gzip"

    /// A gzip'd tar with one incompressible file of `size` bytes from `seed`.
    public static func random(size: Int, seed: UInt64, annotations: [String: String] = [:]) throws -> TestLayer {
        let work = try TemporaryDirectory(prefix: "starling-layer")
        let root = work.appending("root")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try Data(pseudoRandomBytes(count: size, seed: seed)).write(to: URL(fileURLWithPath: root + "/data-\(seed).bin"))
        try Command.check(["tar", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@0", "-C", root, "-cf", work.appending("layer.tar"), "."])
        let tar = try [UInt8](Data(contentsOf: URL(fileURLWithPath: work.appending("layer.tar"))))
        try Command.check(["gzip", "-n", "-1", work.appending("layer.tar")])
        let blob = try [UInt8](Data(contentsOf: URL(fileURLWithPath: work.appending("layer.tar.gz"))))
        return TestLayer(blob: blob, digest: sha256Digest(blob), diffID: sha256Digest(tar), annotations: annotations)
    }
}

/// One platform's image in a test layout.
public struct TestImage: Sendable {
    public var os = "linux"
    public var architecture = "amd64"
    public var variant: String?
    public var layers: [TestLayer]
    /// The config's `Labels`.
    public var labels: [String: String]

    public init(os: String = "linux", architecture: String = "amd64", variant: String? = nil, layers: [TestLayer],
                labels: [String: String] = [:]) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
        self.layers = layers
        self.labels = labels
    }
}

/// What `TestImageLayout.write` produced.
public struct TestImageLayoutResult: Sendable {
    /// skopeo source, `oci:DIR:TAG`.
    public var source: String
    /// One per image, in order (as written in the layout, OCI media types).
    public var manifestDigests: [String]
    public var configDigests: [String]
    public var indexDigest: String?
}

/// Writes OCI image layouts (for skopeo to push) directly, so tests control
/// platforms, annotations and index structure.
public enum TestImageLayout {
    /// Writes `images` at `directory` under `tag`: a single manifest, or an
    /// image index when `asIndex` (needed for more than one image).
    public static func write(_ images: [TestImage], at directory: String, tag: String, asIndex: Bool = false) throws -> TestImageLayoutResult {
        let blobs = directory + "/blobs/sha256"
        try FileManager.default.createDirectory(atPath: blobs, withIntermediateDirectories: true)
        func put(_ bytes: [UInt8]) throws -> (digest: String, size: Int) {
            let digest = sha256Digest(bytes)
            try Data(bytes).write(to: URL(fileURLWithPath: blobs + "/" + digest.dropFirst(7)))
            return (digest, bytes.count)
        }
        var manifests: [[String: Any]] = []
        var manifestDigests: [String] = [], configDigests: [String] = []
        for image in images {
            var platform: [String: Any] = ["os": image.os, "architecture": image.architecture]
            if let variant = image.variant { platform["variant"] = variant }
            var config = platform
            config["config"] = image.labels.isEmpty ? ["Cmd": ["/bin/sh"]] : ["Cmd": ["/bin/sh"], "Labels": image.labels]
            config["rootfs"] = ["type": "layers", "diff_ids": image.layers.map(\.diffID)]
            let configBlob = try put(Array(try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])))
            var layers: [[String: Any]] = []
            for layer in image.layers {
                let stored = try put(layer.blob)
                var descriptor: [String: Any] = ["mediaType": layer.mediaType,
                                                 "digest": stored.digest, "size": stored.size]
                if !layer.annotations.isEmpty { descriptor["annotations"] = layer.annotations }
                layers.append(descriptor)
            }
            let manifest: [String: Any] = [
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": configBlob.digest, "size": configBlob.size],
                "layers": layers,
            ]
            let manifestBlob = try put(Array(try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])))
            manifestDigests.append(manifestBlob.digest)
            configDigests.append(configBlob.digest)
            manifests.append(["mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifestBlob.digest,
                              "size": manifestBlob.size, "platform": platform])
        }
        var indexDigest: String?
        var top: [[String: Any]] = manifests
        if asIndex || images.count > 1 {
            let index: [String: Any] = ["schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                        "manifests": manifests]
            let stored = try put(Array(try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys])))
            indexDigest = stored.digest
            top = [["mediaType": "application/vnd.oci.image.index.v1+json", "digest": stored.digest, "size": stored.size]]
        }
        top = top.map { entry in
            var entry = entry
            entry["annotations"] = ["org.opencontainers.image.ref.name": tag]
            entry.removeValue(forKey: "platform")
            return entry
        }
        try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: directory + "/oci-layout"))
        let layoutIndex: [String: Any] = ["schemaVersion": 2, "manifests": top]
        try JSONSerialization.data(withJSONObject: layoutIndex).write(to: URL(fileURLWithPath: directory + "/index.json"))
        return TestImageLayoutResult(source: "oci:\(directory):\(tag)", manifestDigests: manifestDigests,
                                     configDigests: configDigests, indexDigest: indexDigest)
    }
}

/// `sha256:<hex>` of `bytes`.
public func sha256Digest(_ bytes: [UInt8]) -> String {
    "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

/// Deterministic incompressible bytes (xorshift64*).
public func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E3779B97F4A7C15 | 1
    var bytes = [UInt8](repeating: 0, count: count)
    var index = 0
    while index < count {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        var word = state &* 0x2545F4914F6CDD1D
        for _ in 0..<8 where index < count {
            bytes[index] = UInt8(truncatingIfNeeded: word)
            word >>= 8
            index += 1
        }
    }
    return bytes
}
