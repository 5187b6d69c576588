#!/usr/bin/env bash
# Builds the libFuzzer target over footer + TOC parsing (fuzz/FuzzTOC.swift)
# against an instrumented build of StargzReader, in its own build directory
# (.build-fuzz) so the normal build is untouched.
#   fuzz/build.sh            -> .build-fuzz/fuzz-toc
#   fuzz/run.sh [SECONDS]    -> runs it on the seed corpus
set -euo pipefail
cd "$(dirname "$0")/.."
bp=.build-fuzz
swift build --build-path "$bp" --target StargzReader \
  -Xswiftc -sanitize=fuzzer -Xswiftc -sanitize=address >&2
dbg="$bp/debug"
objs=$(find "$dbg/StargzReader.build" "$dbg/Crypto.build" "$dbg/CCryptoBoringSSL.build" \
            "$dbg/CCryptoBoringSSLShims.build" "$dbg/CryptoBoringWrapper.build" -name '*.o' 2>/dev/null)
swiftc -sanitize=fuzzer,address -parse-as-library -g \
  -I "$dbg/Modules" -I Sources/CZlib -I Sources/CZstd \
  -Xcc -fmodule-map-file=Sources/CZlib/module.modulemap -Xcc -fmodule-map-file=Sources/CZstd/module.modulemap \
  fuzz/FuzzTOC.swift $objs -lz -lzstd -lstdc++ -o "$bp/fuzz-toc"
echo "$bp/fuzz-toc"
