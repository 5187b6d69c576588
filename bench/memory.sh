#!/usr/bin/env bash
# Peak resident memory (VmHWM) of the snapshotter daemon, Starling against
# containerd-stargz-grpc 0.12 (../shared/peer/build-peer.sh), on the three
# workloads of issue 15, each from an empty node over loopback, the two
# daemons alternating (ABBA), medians of RUNS:
#   python   `python3 -c 'print(1)'`, image made by `ctr-remote images optimize`
#   gcc      compile and run a C program, image made by `ctr-remote images convert`
#   readall  read every file of the Debian+python root, same conversion
# Prints `RSS WORKLOAD loopback VARIANT: peak resident memory median N MB`
# lines and `RATIO memory-WORKLOAD: starling/reference`. It is bench/coldstart.sh
# with WORKLOAD set (see there for STARLING, STARGZ_GRPC, RUNS, ...); memory
# does not depend on timing, so it can run while others compile
# (IDLE_TIMEOUT=0 is the default here).
#   WORKLOADS="python gcc readall"  RUNS=3
# Profiles: PROFILE=massif (or heaptrack) WORKLOADS=gcc RUNS=1 bench/memory.sh
# runs Starling under the profiler and leaves the profile in bench/out/;
# `ms_print bench/out/gcc-loopback-run1.massif.out` shows the peak snapshot.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
WORKLOADS=${WORKLOADS:-python gcc readall}
export RUNS=${RUNS:-3} IDLE_TIMEOUT=${IDLE_TIMEOUT:-0} BUSY_WAIT=${BUSY_WAIT:-0}
variants=${VARIANTS:-starling reference}
[ -z "${PROFILE:-}" ] || variants=starling
mkdir -p "$here/out"
for workload in $WORKLOADS; do
  optimize=0
  [ "$workload" != python ] || optimize=1
  log="$here/out/memory-$workload.log"
  WORKLOAD=$workload OPTIMIZE=$optimize VARIANTS=$variants LINKS=loopback "$here/coldstart.sh" >"$log" 2>&1 \
    || { tail -20 "$log" >&2; exit 1; }
  grep '^RSS ' "$log"
  median_of() { sed -n "s/^RSS .* $1: peak resident memory median \([0-9.]*\) MB.*/\1/p" "$log" | head -1; }
  ours=$(median_of starling)
  theirs=$(median_of reference)
  if [ -n "$ours" ] && [ -n "$theirs" ]; then
    echo "RATIO memory-$workload: $(echo "scale=2; $ours / $theirs" | bc | sed 's/^\./0./') (Starling $ours MB / containerd-stargz-grpc $theirs MB peak RSS)"
  fi
done
