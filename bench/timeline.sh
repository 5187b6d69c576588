#!/usr/bin/env bash
# Where a cold start's time goes: one traced cold start of the python image
# through Starling (bench/coldstart.sh with TIMELINE=1, containerd at debug
# level, Starling at trace level), then one timeline from rpull to the
# container's exit, each event's offset from the rpull in milliseconds:
#   marks       rpull and `ctr run` (this script), python's first line (the
#               program prints time.time() as its code begins)
#   starling    snapshot gRPC calls, TOC and mount, read-ahead, every fetch
#   containerd  task and container events (create, start, exit)
# Tracing costs a little time; the timeline says where the time goes, the
# cold-start figures come from bench/coldstart.sh.
#   STARLING=path/to/starling bench/timeline.sh
#   LINKS=loopback (or wan)  OPTIMIZE=1 (the optimized image; default)  RUNS=1
#   VARIANT=starling (or index, unpack: the plain image; see coldstart.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
TIMELINE=1 KEEP=1 LOG_LEVEL=trace CONTAINERD_LOG_LEVEL=debug VARIANTS=${VARIANT:-starling} \
  LINKS=${LINKS:-loopback} RUNS=${RUNS:-1} OPTIMIZE=${OPTIMIZE:-1} IDLE_TIMEOUT=${IDLE_TIMEOUT:-0} BUSY_WAIT=${BUSY_WAIT:-0} \
  bash "$here/coldstart.sh" 2>&1 | tee "$log" | grep -E '^(loopback|wan) |cold start median' >&2
work=$(sed -n 's/^kept //p' "$log" | tail -1)
[ -n "$work" ] || { echo "coldstart.sh kept no work directory" >&2; tail -20 "$log" >&2; exit 1; }
for dir in "$work"/*-"${VARIANT:-starling}"-*; do
  echo "== $(basename "$dir")"
  python3 "$here/lib/timeline.py" "$dir"
done
rm -rf "$work"
