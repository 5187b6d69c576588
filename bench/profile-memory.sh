#!/usr/bin/env bash
# Where the daemon's memory goes: one cold start of WORKLOAD (python, gcc,
# readall; see bench/coldstart.sh) with `starling serve` under a heap
# profiler, then the profile's peak summarized.
#   PROFILER=heaptrack (default): the preload library records every
#       allocation with its backtrace; prints the peak heap, the top
#       allocation sites by peak consumption (`heaptrack_print -p`), and
#       leaves bench/out/WORKLOAD-loopback-run1.heaptrack.zst
#       (heaptrack_print -f FILE, or heaptrack_gui)
#   PROFILER=massif: valgrind --tool=massif (slower: it runs the threads one
#       at a time); prints the peak snapshot's tree (ms_print) and leaves
#       bench/out/WORKLOAD-loopback-run1.massif.out
# Heap figures are what the allocator was asked for; the resident figure
# (bench/memory.sh) adds the binary's and libraries' pages, thread stacks
# and what malloc keeps after free.
#   STARLING=path/to/starling WORKLOAD=gcc PEAKS=15 bench/profile-memory.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
WORKLOAD=${WORKLOAD:-gcc}
PROFILER=${PROFILER:-heaptrack}
PEAKS=${PEAKS:-15}
optimize=0
[ "$WORKLOAD" != python ] || optimize=1
log="$here/out/profile-$WORKLOAD.log"
mkdir -p "$here/out"
PROFILE=$PROFILER WORKLOAD=$WORKLOAD OPTIMIZE=$optimize VARIANTS=starling LINKS=loopback RUNS=1 \
  IDLE_TIMEOUT=0 BUSY_WAIT=0 "$here/coldstart.sh" >"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
grep -E '^loopback starling run' "$log" || true
case $PROFILER in
  heaptrack)
    out="$here/out/$WORKLOAD-loopback-run1.heaptrack.zst"
    heaptrack_print -f "$out" -p 1 -a 0 -T 0 -l 0 -n "$PEAKS" -s 3 >"$out.txt"
    grep -E '^(peak heap memory consumption|peak RSS|total memory leaked|calls to allocation)' "$out.txt" || true
    # Each peak entry: its bytes at the heap's peak, then the backtrace; the
    # first frames of each say where.
    awk '/^PEAK MEMORY CONSUMERS/ {on=1; next} on && /^MOST TEMPORARY|^SUMMARY/ {exit}
         on && /peak memory consumed over/ {n=0; print ""; print; next}
         on && n < 6 && NF {print "    " $0; n++}' "$out.txt" | head -$((PEAKS * 9))
    echo "full report: $out.txt" ;;
  massif)
    out="$here/out/$WORKLOAD-loopback-run1.massif.out"
    ms_print "$out" | head -120
    echo "full report: ms_print $out" ;;
  *) echo "unknown PROFILER $PROFILER (heaptrack, massif)" >&2; exit 1 ;;
esac
