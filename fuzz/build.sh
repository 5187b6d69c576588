#!/usr/bin/env bash
# Builds the libFuzzer target over footer + TOC parsing: fuzz/FuzzTOC.swift
# compiled in ONE module with Sources/StargzReader/*.swift, instrumented with
# -sanitize=fuzzer,address, linked against the (uninstrumented) objects of
# the modules it imports (swift-crypto, Basics, BlockingWork) from the
# normal debug build.
#   fuzz/build.sh            -> $SCRATCH/fuzz/fuzz-toc
#   fuzz/run.sh [SECONDS]    -> runs it on a seed corpus
# SCRATCH (default .build) is the SwiftPM scratch path whose swift-crypto
# objects are linked; CONFIG (default debug) picks debug or release objects
# (only the fuzzed StargzReader sources need the instrumentation).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=${SCRATCH:-.build}
config=${CONFIG:-debug}
dbg=$scratch/$config
[ -d "$dbg/Crypto.build" ] || swift build -c "$config" --scratch-path "$scratch" --target StargzReader >&2
mkdir -p "$scratch/fuzz"
objs=$(find "$dbg/Crypto.build" "$dbg/CCryptoBoringSSL.build" "$dbg/CCryptoBoringSSLShims.build" \
            "$dbg/CryptoBoringWrapper.build" "$dbg/CXKCP.build" "$dbg/CXKCPShims.build" \
            "$dbg/Basics.build" "$dbg/BlockingWork.build" -name '*.o')
swiftc -sanitize=fuzzer,address -parse-as-library -g -Onone -module-name FuzzTOC \
  -I "$dbg/Modules" -I Sources/CZlib -I Sources/CZstd -I Sources/CDeflate \
  Sources/StargzReader/*.swift fuzz/FuzzTOC.swift $objs -lz -lzstd -ldeflate -lstdc++ -o "$scratch/fuzz/fuzz-toc"
echo "$scratch/fuzz/fuzz-toc"
