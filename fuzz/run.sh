#!/usr/bin/env bash
# Runs the TOC fuzzer for SECONDS (default 600) on a corpus seeded with the
# reference fixtures (whole blobs), their TOC JSON documents (bare, so the
# parser and index builder are fuzzed without the gzip/zstd container), and
# a blob of our own writer when a starling binary is at hand ($STARLING);
# prints libFuzzer's summary. Uses fuzz/toc.dict.
#   fuzz/run.sh 900                       # 15 minutes
#   SCRATCH=.build-bench CONFIG=release fuzz/run.sh 900
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
scratch=${SCRATCH:-.build}
bin=$scratch/fuzz/fuzz-toc
[ -x "$bin" ] || fuzz/build.sh >/dev/null
corpus=$scratch/fuzz/corpus
mkdir -p "$corpus"
cp Tests/Fixtures/reference-*.blob "$corpus/" 2>/dev/null || true
# The eStargz TOC: the tar entry stargz.index.json inside the gzip members.
python3 - "$corpus" <<'PY'
import gzip, io, sys, tarfile
data = open("Tests/Fixtures/reference-estargz.blob", "rb").read()
with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as t:
    for m in t:
        if m.name == "stargz.index.json":
            open(sys.argv[1] + "/reference-estargz.toc.json", "wb").write(t.extractfile(m).read())
PY
if [ -n "${STARLING:-}" ] && [ -x "$STARLING" ]; then
  "$STARLING" layer convert Tests/Fixtures/source.tar.gz "$corpus/starling-estargz.blob" >/dev/null
  "$STARLING" layer inspect --toc "$corpus/starling-estargz.blob" 2>/dev/null \
    | awk 'f || /^\{$/ { f = 1; print }' > "$corpus/starling-estargz.toc.json" || true
fi
start=$(date +%s)
status=0
"$bin" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -dict=fuzz/toc.dict \
  -artifact_prefix="$scratch/fuzz/crash-" "$corpus" || status=$?
echo "fuzz-toc: ran $(( $(date +%s) - start )) s, exit status $status ($( [ $status = 0 ] && echo 'no crash' || echo "CRASH: see $scratch/fuzz/crash-*"))"
exit $status
