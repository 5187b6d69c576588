// swift-tools-version:6.0
import PackageDescription

// Starling: a containerd remote snapshotter. Targets mirror the architecture:
//   C libraries (one thin Swift wrapper each, inside the module that uses it)
//   StargzReader  - eStargz / zstd:chunked format: footer, TOC, chunks, writer
//   Registry      - OCI distribution client on libcurl (range reads, auth)
//   LazyLayer     - data path: chunk cache, fetch coalescing, prefetch, background fetch
//   FuseFS        - libfuse3 low-level read-only filesystem over a layer
//   GRPCShim      - generated containerd snapshots protobuf + gRPC service adapter
//   Snapshotter   - daemon: metadata store, overlay + remote snapshots, CLI commands
//   starling      - the executable
let package = Package(
    name: "Starling",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "starling", targets: ["starling"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // MARK: C libraries (found with pkg-config)
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CDeflate", path: "Sources/CDeflate", pkgConfig: "libdeflate",
                       providers: [.apt(["libdeflate-dev"])]),
        .systemLibrary(name: "CFuse3", path: "Sources/CFuse3", pkgConfig: "fuse3",
                       providers: [.apt(["libfuse3-dev"])]),
        // curl_easy_setopt/getinfo are variadic, which Swift cannot call: a few
        // typed C shims live here.
        .target(name: "CCurl", path: "Sources/CCurl",
                linkerSettings: [.linkedLibrary("curl")]),

        // MARK: format
        .target(name: "StargzReader", dependencies: [
            "CZlib", "CZstd", "CDeflate",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),

        // MARK: registry
        .target(name: "Registry", dependencies: [
            "CCurl", "StargzReader",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "TOMLKit", package: "TOMLKit"),
        ]),

        // MARK: threads for blocking work (fetches, store and mount calls)
        .target(name: "BlockingWork"),

        // MARK: lazy layer data path and FUSE
        .target(name: "LazyLayer", dependencies: [
            "StargzReader", "BlockingWork",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "FuseFS", dependencies: [
            "CFuse3", "StargzReader", "LazyLayer",
            .product(name: "Logging", package: "swift-log"),
        ]),

        // MARK: CVMFS (layers already unpacked in a repository such as unpacked.cern.ch)
        .target(name: "CVMFSBackend"),

        // MARK: gRPC and daemon
        .target(name: "GRPCShim", dependencies: [
            "BlockingWork",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], exclude: ["Protos"]),
        .target(name: "Snapshotter", dependencies: [
            "StargzReader", "Registry", "LazyLayer", "FuseFS", "GRPCShim", "CVMFSBackend", "BlockingWork",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        .executableTarget(name: "starling", dependencies: ["Snapshotter"]),
        // Benchmark driver for bench/registry.sh (not installed, not a starling subcommand).
        .executableTarget(name: "registry-bench", dependencies: ["Registry"], path: "bench/registry"),
        // Benchmark driver for bench/coldread.sh: cold read of every file through LazyLayer.
        .executableTarget(name: "coldread-bench", dependencies: ["LazyLayer", "Registry", "StargzReader"],
                          path: "bench/coldread"),

        // MARK: tests
        // Shared test harness: temp dirs, child processes, a real docker-registry on
        // loopback, skopeo pushes, containerd instances.
        .target(name: "TestSupport", dependencies: [
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Tests/TestSupport"),
        .testTarget(name: "CVMFSTests", dependencies: ["CVMFSBackend", "TestSupport"]),
        .testTarget(name: "StargzTests", dependencies: ["StargzReader", "TestSupport"]),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "StargzReader", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "LazyLayerTests", dependencies: ["LazyLayer", "BlockingWork", "StargzReader", "Registry", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "FuseFSTests", dependencies: ["FuseFS", "LazyLayer", "StargzReader", "Registry", "TestSupport"]),
        .testTarget(name: "SnapshotterTests", dependencies: ["Snapshotter", "GRPCShim", "TestSupport",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
