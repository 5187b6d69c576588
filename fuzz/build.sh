#!/usr/bin/env bash
# Builds the libFuzzer target over footer + TOC parsing: fuzz/FuzzTOC.swift
# compiled in ONE module with Sources/StargzReader/*.swift, instrumented with
# -sanitize=fuzzer,address, linked against the (uninstrumented) swift-crypto
# objects of the normal debug build.
#   fuzz/build.sh            -> .build/fuzz/fuzz-toc
#   fuzz/run.sh [SECONDS]    -> runs it on a seed corpus
set -euo pipefail
cd "$(dirname "$0")/.."
dbg=.build/debug
[ -d "$dbg/Crypto.build" ] || swift build --target StargzReader >&2
mkdir -p .build/fuzz
objs=$(find "$dbg/Crypto.build" "$dbg/CCryptoBoringSSL.build" "$dbg/CCryptoBoringSSLShims.build" \
            "$dbg/CryptoBoringWrapper.build" "$dbg/CXKCP.build" "$dbg/CXKCPShims.build" -name '*.o')
swiftc -sanitize=fuzzer,address -parse-as-library -g -Onone -module-name FuzzTOC \
  -I "$dbg/Modules" -I Sources/CZlib -I Sources/CZstd \
  Sources/StargzReader/*.swift fuzz/FuzzTOC.swift $objs -lz -lzstd -lstdc++ -o .build/fuzz/fuzz-toc
echo .build/fuzz/fuzz-toc
