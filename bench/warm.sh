#!/usr/bin/env bash
# Warm (kernel-cached) performance of a Starling FUSE layer mount against the
# same tree unpacked on local disk, measured in the same run:
#   seq   sequential read (dd bs=1M) of a 256 MiB file     target >= 0.8x native throughput
#   walk  metadata walk of a Debian root filesystem layer  target <= 2x native time
#         (find -printf: lstat of every entry; find -exec stat {} +)
# Then each kernel-cache feature is turned off in turn (`starling layer mount
# --disable FEATURE`) to show what it buys.
#
#   bench/warm.sh                      # all of it
#   FEATURES="keep-cache readdirplus" bench/warm.sh   # only these ablations
#   FEATURES=none bench/warm.sh        # defaults only
#
# Needs root, FUSE, hyperfine, jq, debootstrap (or a cached rootfs in
# ${CACHE:-/var/tmp/debian-rootfs}/base). Work files go to ${WORK:-/var/tmp/starling-bench-warm}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/starling.sh"
work=${WORK:-/var/tmp/starling-bench-warm}
cache=${CACHE:-/var/tmp/debian-rootfs}
runs=${RUNS:-10}
features=${FEATURES:-"keep-cache entry-cache attr-cache negative-entries cache-readdir cache-symlinks readdirplus async-read parallel-dirops large-reads readahead"}
mkdir -p "$work"
mnt="$work/mnt"
pid=

cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  mountpoint -q "$mnt" && umount -l "$mnt" || true
}
trap cleanup EXIT

# --- inputs -----------------------------------------------------------------
if [ ! -f "$work/seq.blob" ]; then
  echo "building the 256 MiB layer" >&2
  rm -rf "$work/seq-tree"; mkdir -p "$work/seq-tree"
  head -c $((256 << 20)) /dev/urandom > "$work/seq-tree/big.bin"
  tar -C "$work/seq-tree" -cf "$work/seq.tar" .
  "$STARLING" layer convert "$work/seq.tar" "$work/seq.blob" > "$work/seq.json"
  rm -f "$work/seq.tar"
fi
if [ ! -f "$work/rootfs.blob" ]; then
  rootfs="$cache/base"
  if [ ! -f "$rootfs.done" ]; then
    echo "debootstrapping a Debian root filesystem into $rootfs" >&2
    rm -rf "$rootfs"; mkdir -p "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >&2
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    touch "$rootfs.done"
  fi
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$rootfs" -cf "$work/rootfs.tar" .
  "$STARLING" layer convert "$work/rootfs.tar" "$work/rootfs.blob" > "$work/rootfs.json"
  rm -rf "$work/native-rootfs"; mkdir -p "$work/native-rootfs"
  tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$work/rootfs.tar" -C "$work/native-rootfs"
  rm -f "$work/rootfs.tar"
fi
entries=$(find "$work/native-rootfs" | wc -l)

# --- helpers ----------------------------------------------------------------
mount_layer() { # blob, extra args...
  local blob=$1; shift
  mkdir -p "$mnt"
  "$STARLING" layer mount "$blob" "$mnt" "$@" > "$work/mount.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    if mountpoint -q "$mnt"; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { cat "$work/mount.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "mount did not appear" >&2; exit 1
}
unmount_layer() {
  kill -TERM "$pid"; wait "$pid" || true; pid=
  ! mountpoint -q "$mnt" || { echo "still mounted after SIGTERM" >&2; exit 1; }
}
mean() { # command -> mean seconds over $runs warm runs (hyperfine, after warmup)
  hyperfine -N --style none --warmup 2 --runs "$runs" --export-json "$work/h.json" "$1" >/dev/null 2>&1 \
    || hyperfine -N --style none --warmup 2 --runs "$runs" --export-json "$work/h.json" "$1" >&2
  jq '.results[0].mean' "$work/h.json"
}
seq_cmd() { echo "dd if=$1/big.bin of=/dev/null bs=1M"; }
walk_cmd() { echo "find $1 -printf %p%s%m%U%G%T@%l"; }
stat_cmd() { echo "find $1 -exec stat {} +"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# --- native baseline (same run) ----------------------------------------------
native_seq=$(mean "$(seq_cmd "$work/seq-tree")")
native_walk=$(mean "$(walk_cmd "$work/native-rootfs")")
native_stat=$(mean "$(stat_cmd "$work/native-rootfs")")
echo "native: seq ${native_seq}s ($(ratio 256 "$native_seq") MiB/s), walk ${native_walk}s, stat ${native_stat}s over $entries entries"

measure() { # label, extra mount args...
  local label=$1; shift
  mount_layer "$work/seq.blob" "$@"
  dd if="$mnt/big.bin" of=/dev/null bs=1M 2>/dev/null  # cold read: fills the caches
  local s; s=$(mean "$(seq_cmd "$mnt")")
  unmount_layer
  mount_layer "$work/rootfs.blob" "$@"
  local w st; w=$(mean "$(walk_cmd "$mnt")"); st=$(mean "$(stat_cmd "$mnt")")
  unmount_layer
  printf '%-22s seq %.3fs (%s MiB/s, %sx native)  walk %.3fs (%sx)  stat-walk %.3fs (%sx)\n' \
    "$label" "$s" "$(ratio 256 "$s")" "$(ratio "$native_seq" "$s")" "$w" "$(ratio "$w" "$native_walk")" \
    "$st" "$(ratio "$st" "$native_stat")"
  last_seq=$(ratio "$native_seq" "$s"); last_walk=$(ratio "$w" "$native_walk"); last_stat=$(ratio "$st" "$native_stat")
}

measure "starling (defaults)"
echo "RATIO warm-seq-read: ${last_seq}x native throughput (target >= 0.8)"
echo "RATIO warm-metadata-walk: ${last_walk}x native time (find -printf; target <= 2.0)"
echo "RATIO warm-stat-walk: ${last_stat}x native time (find -exec stat; target <= 2.0)"
if [ "$features" != none ]; then
  for feature in $features; do
    measure "without $feature" --disable "$feature"
  done
fi
