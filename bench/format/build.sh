#!/usr/bin/env bash
# Builds bench/format/FormatBench.swift with Sources/StargzReader/*.swift as
# one optimised module, linked against release builds of Basics,
# BlockingWork and swift-crypto (with the Swift runtime linked in, as the
# benchmarks build everything). Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/../.."
bp=${BUILD_PATH:-${SCRATCH:-.build}}
rel="$bp/release"
# Basics (digests, system calls) is its own module, as in the package.
[ -d "$rel/BlockingWork.build" ] || scripts/build-release --target StargzReader --scratch-path "$bp" >&2
objs=$(find "$rel/Basics.build" "$rel/BlockingWork.build" "$rel/Crypto.build" "$rel/CCryptoBoringSSL.build" "$rel/CCryptoBoringSSLShims.build" \
            "$rel/CryptoBoringWrapper.build" "$rel/CXKCP.build" "$rel/CXKCPShims.build" -name '*.o')
mkdir -p "$bp/format-bench"
swiftc -O -wmo -static-stdlib -parse-as-library -module-name FormatBench -I "$rel/Modules" -I Sources/CZlib -I Sources/CZstd -I Sources/CDeflate \
  Sources/StargzReader/*.swift bench/format/FormatBench.swift $objs -lz -lzstd -ldeflate -lstdc++ \
  -o "$bp/format-bench/format-bench" >&2
echo "$bp/format-bench/format-bench"
