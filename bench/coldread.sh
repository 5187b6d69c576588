#!/usr/bin/env bash
# Cold read of every file of a Debian+python layer, lazily from a loopback
# registry through Starling (`starling layer mount`, i.e. FUSE over the
# LazyLayer data path, with an empty cache), against `ctr image pull` (pull +
# unpack into overlayfs) of the same image in gzip form by a private
# containerd. Prints `RATIO coldread: lazy/pull` (target <= 1.0) and how many
# requests the lazy read made.
#
# Needs root, docker-registry, skopeo, debootstrap (first run only; the
# rootfs is cached in /var/tmp/debian-rootfs), containerd, ctr, ctr-remote.
#   STARLING=path/to/starling bench/coldread.sh      (bench/run sets STARLING)
#   RUNS=3 (median of RUNS timings each side)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
if [ -z "${STARLING:-}" ]; then
  (cd "$repo" && swift build -c release --scratch-path "${SCRATCH:-.build}" --product starling >&2)
  STARLING="$(cd "$repo" && swift build -c release --scratch-path "${SCRATCH:-.build}" --show-bin-path)/starling"
fi
RUNS=${RUNS:-3}
READERS=${READERS:-8}

work=$(mktemp -d /var/tmp/starling-coldread.XXXXXX)
pids=()
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  # overlay mounts made by containerd under our temp root
  { grep -o " $work[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
free_port() {
  local p
  while :; do
    p=$(shuf -i 20000-60000 -n 1)
    (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
  done
}

# --- registry on loopback
port=$(free_port)
mkdir -p "$work/registry"
cat > "$work/registry/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YAML
docker-registry serve "$work/registry/config.yml" 2>"$work/registry/log" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
registry=127.0.0.1:$port

# --- the gzip image (debootstrap once, cached)
echo "building debian-python image (first run debootstraps; later runs reuse the cache)" >&2
CACHE=${CACHE:-/var/tmp/debian-rootfs} /work/shared/bin/make-debian-image "$registry/debian-python:1" python3 >/dev/null

# --- a private containerd (own root, state, socket), overlayfs snapshotter
start_containerd() {
  local dir=$1
  mkdir -p "$dir/root" "$dir/state" "$dir/opt"
  cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
TOML
  containerd --config "$dir/config.toml" >"$dir/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$dir/containerd.sock" ] && ctr -a "$dir/containerd.sock" version >/dev/null 2>&1 && return; sleep 0.1; done
  echo "containerd did not start: $(tail -5 "$dir/log")" >&2; exit 1
}
stop_containerd() {
  local dir=$1 pid=${pids[-1]}
  kill "$pid"; wait "$pid" 2>/dev/null || true
  unset 'pids[-1]'
  { grep -o " $dir[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$dir"
}

# --- convert to eStargz with the reference converter and push it
start_containerd "$work/convert"
ctrr() { ctr-remote -a "$work/convert/containerd.sock" -n bench "$@"; }
ctrr images pull --plain-http "$registry/debian-python:1" >/dev/null
ctrr images convert --oci --estargz "$registry/debian-python:1" "$registry/debian-python:esgz" >/dev/null
ctrr images push --plain-http "$registry/debian-python:esgz" >/dev/null
stop_containerd "$work/convert"
manifest=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$registry/v2/debian-python/manifests/esgz")
layer=$(jq -r '.layers[-1].digest' <<<"$manifest")
toc=$(jq -r '.layers[-1].annotations["containerd.io/snapshot/stargz/toc.digest"]' <<<"$manifest")
gzmanifest=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$registry/v2/debian-python/manifests/1")
echo "gzip layer: $(jq -r '.layers[-1].size' <<<"$gzmanifest") bytes; eStargz layer $layer: $(jq -r '.layers[-1].size' <<<"$manifest") bytes" >&2

# --- baseline: ctr image pull (fetch + unpack into overlayfs), fresh containerd each run
pull_times=()
for i in $(seq "$RUNS"); do
  start_containerd "$work/pull$i"
  t0=$(now)
  ctr -a "$work/pull$i/containerd.sock" -n bench images pull --plain-http --snapshotter overlayfs \
    "$registry/debian-python:1" >/dev/null
  sync
  t1=$(now)
  pull_times+=("$(echo "$t1 - $t0" | bc)")
  stop_containerd "$work/pull$i"
done
pull=$(printf '%s\n' "${pull_times[@]}" | median)

# --- lazy: mount with an empty cache, read every file, unmount
mount_help=$("$STARLING" layer mount --help 2>&1 || true)
flag_if_known() { if grep -q -- "$1" <<<"$mount_help"; then mount_flags+=("$@"); fi; }
lazy_times=()
requests=""
for i in $(seq "$RUNS"); do
  mnt=$work/mnt$i; cache=$work/cache$i
  mkdir -p "$mnt" "$cache"
  mount_flags=()
  flag_if_known --cache-dir "$cache"
  flag_if_known --insecure-registry "$registry"
  t0=$(now)
  "$STARLING" layer mount "${mount_flags[@]}" --toc-digest "$toc" "$registry/debian-python@$layer" "$mnt" \
    >"$work/mount$i.log" 2>&1 &
  mpid=$!; pids+=($mpid); mounts+=("$mnt")
  for _ in $(seq 600); do mountpoint -q "$mnt" && break; kill -0 $mpid 2>/dev/null || break; sleep 0.05; done
  mountpoint -q "$mnt" || { echo "mount failed: $(tail -5 "$work/mount$i.log")" >&2; exit 1; }
  (cd "$mnt" && find . -type f -print0 | xargs -0 -r -n 64 -P "$READERS" cat >/dev/null)
  t1=$(now)
  lazy_times+=("$(echo "$t1 - $t0" | bc)")
  state=$(cat "$mnt/.starling/$layer.json" 2>/dev/null || cat "$mnt/.starling/${layer#sha256:}.json" 2>/dev/null || echo '{}')
  requests=$(jq -r '.requests // "?"' <<<"$state")
  echo "run $i: $(echo "$t1 - $t0" | bc) s, state: $state" >&2
  umount "$mnt"; wait $mpid 2>/dev/null || true
  unset 'pids[-1]'; unset 'mounts[-1]'
done
lazy=$(printf '%s\n' "${lazy_times[@]}" | median)

# --- the same cold read in process (LazyLayer data path without FUSE), to
# tell the data path's time from the kernel/FUSE part (INPROCESS=0: skip)
inproc=""
if [ "${INPROCESS:-1}" = 1 ]; then
  scratch=${SCRATCH:-.build}
  (cd "$repo" && swift build -c release --scratch-path "$scratch" --product coldread-bench >&2)
  cbin="$(cd "$repo" && swift build -c release --scratch-path "$scratch" --show-bin-path)/coldread-bench"
  inproc_times=()
  for i in $(seq "$RUNS"); do
    rm -rf "$work/icache$i"; mkdir -p "$work/icache$i"
    out=$("$cbin" --reference "$registry/debian-python" --digest "$layer" --toc-digest "$toc" \
      --cache-dir "$work/icache$i" --readers "$READERS")
    echo "in-process run $i: $out" >&2
    inproc_times+=("$(jq -r .seconds <<<"$out")")
  done
  inproc=$(printf '%s\n' "${inproc_times[@]}" | median)
fi

echo "pull+unpack (gzip, ctr image pull): ${pull_times[*]} s (median $pull)"
echo "lazy cold read of every file:       ${lazy_times[*]} s (median $lazy), $requests requests"
if [ -n "$inproc" ]; then
  echo "in-process data path (no FUSE):     ${inproc_times[*]} s (median $inproc)"
fi
echo "RATIO coldread: $(echo "scale=2; $lazy / $pull" | bc) (lazy cold read of every file / pull+unpack; target <= 1.0; $requests requests)"
if [ -n "$inproc" ]; then
  echo "RATIO coldread-inprocess: $(echo "scale=2; $inproc / $pull" | bc) (LazyLayer reads without FUSE / pull+unpack)"
fi
