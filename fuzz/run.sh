#!/usr/bin/env bash
# Runs the TOC fuzzer for SECONDS (default 600) on a corpus seeded with the
# reference fixtures and a blob of our own writer; prints libFuzzer's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
bin=.build-fuzz/fuzz-toc
[ -x "$bin" ] || fuzz/build.sh
corpus=.build-fuzz/corpus
mkdir -p "$corpus"
cp Tests/Fixtures/reference-*.blob "$corpus/" 2>/dev/null || true
"$bin" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
  -artifact_prefix=.build-fuzz/crash- "$corpus"
