# Sourced first by the benchmarks that run the daemon: where the repository
# and ../shared are, and which starling binary to measure (STARLING, else a
# release build in SCRATCH, default .build-coldstart, so a benchmark never
# waits on or blocks the debug build). Sets repo, shared and STARLING.
repo=$(cd "$here/.." && pwd)
shared=${SHARED:-$(cd "$repo/.." && pwd)/shared}
[ -d "$shared/bin" ] || shared=/work/shared
if [ -z "${STARLING:-}" ]; then
  "$repo/scripts/build-release" --scratch-path "${SCRATCH:-.build-coldstart}" --product starling >&2
  STARLING="$("$repo/scripts/build-release" --scratch-path "${SCRATCH:-.build-coldstart}" --show-bin-path)/starling"
fi
