#!/usr/bin/env bash
# Cold read of every file of a Debian+python layer, lazily from a loopback
# registry through Starling (`starling layer mount`, i.e. FUSE over the
# LazyLayer data path, with an empty cache), against `ctr image pull` (pull +
# unpack into overlayfs) of the same image in gzip form by a private
# containerd, directly on loopback and through `slowlink --rtt-ms 20 --mbit 200`
# (LINKS="loopback wan"), the two alternating ABBA within each link. Prints the
# warm floor (the same reads of the tree already on local disk) and
# `RATIO coldread-<link>: lazy/pull` (medians; target <= 1.0 on loopback, <= 0.6
# on the wan link) with how many requests the lazy read made.
#
# Needs root, docker-registry, skopeo, debootstrap (first run only; the
# rootfs is cached in /var/tmp/debian-rootfs), containerd, ctr, ctr-remote.
#   STARLING=path/to/starling bench/coldread.sh      (bench/run sets STARLING)
#   RUNS=3 (median of RUNS timings each side)  LINKS="loopback wan"  RTT_MS=20 MBIT=200
#   READERS=8 (parallel cat)   INPROCESS=0 skips the in-process data path run
#   BASE_STARLING=path: also time the lazy read with that binary (an A/B of
#   a change: RATIO coldread-<link>-vs-base)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/starling.sh"
RUNS=${RUNS:-3}
LINKS=${LINKS:-loopback wan}
RTT_MS=${RTT_MS:-20}
MBIT=${MBIT:-200}
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

. "$here/lib/node.sh"

# --- registry on loopback
start_registry

# --- the gzip image (debootstrap once, cached)
echo "building debian-python image (first run debootstraps; later runs reuse the cache)" >&2
CACHE=${CACHE:-/var/tmp/debian-rootfs} "$shared/bin/make-debian-image" "$registry/debian-python:1" python3 >/dev/null

# A private containerd per run (bench/lib/node.sh), removed after it.
stop_containerd() { stop_last TERM; unmount_under "$1"; rm -rf "$1"; }

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

# --- the links: the registry itself, and slowlink in front of it
declare -A hosts
for link in $LINKS; do
  case $link in
    loopback) hosts[$link]=$registry ;;
    wan)
      start_slowlink slow "$registry" slowlink.log
      hosts[$link]=$slow ;;
    *) echo "unknown link $link" >&2; exit 1 ;;
  esac
done

mount_help=$("$STARLING" layer mount --help 2>&1 || true)
read_all() { (cd "$1" && find . -type f -print0 | xargs -0 -r -n 64 -P "$READERS" cat >/dev/null); }

# --- the warm floor: the same reads of the same tree, already on local disk
"$STARLING" layer extract --insecure-registry "$registry" --toc-digest "$toc" "$registry/debian-python@$layer" "$work/tree" \
  >"$work/extract.log" 2>&1 || { echo "layer extract failed: $(tail -5 "$work/extract.log")" >&2; exit 1; }
read_all "$work/tree"
warm_times=()
for i in $(seq "$RUNS"); do t0=$(now); read_all "$work/tree"; t1=$(now); warm_times+=("$(echo "$t1 - $t0" | bc)"); done
warm=$(printf '%s\n' "${warm_times[@]}" | median)
rm -rf "$work/tree"

# pull: ctr image pull (fetch + unpack into overlayfs) by a fresh containerd
run_pull() { # LINK RUN
  local dir=$work/pull-$1-$2 t0 t1
  start_containerd "$dir"
  t0=$(now)
  ctr -a "$dir/containerd.sock" -n bench images pull --plain-http --snapshotter overlayfs \
    "${hosts[$1]}/debian-python:1" >/dev/null
  sync
  t1=$(now)
  res=$(echo "$t1 - $t0" | bc); res_note=""
  stop_containerd "$dir"
}

# lazy: `starling layer mount` with an empty cache, read every file, unmount
run_lazy() { # LINK RUN BINARY
  local mnt=$work/mnt-$1-$2 cache=$work/cache-$1-$2 t0 t1 mpid state
  mkdir -p "$mnt" "$cache"
  mount_flags=()
  grep -q -- --cache-dir <<<"$mount_help" && mount_flags+=(--cache-dir "$cache")
  grep -q -- --insecure-registry <<<"$mount_help" && mount_flags+=(--insecure-registry "${hosts[$1]}")
  t0=$(now)
  "$3" layer mount "${mount_flags[@]}" --toc-digest "$toc" "${hosts[$1]}/debian-python@$layer" "$mnt" \
    >"$work/mount-$1-$2.log" 2>&1 &
  mpid=$!; pids+=($mpid); mounts+=("$mnt")
  for _ in $(seq 600); do mountpoint -q "$mnt" && break; kill -0 $mpid 2>/dev/null || break; sleep 0.05; done
  mountpoint -q "$mnt" || { echo "mount failed: $(tail -5 "$work/mount-$1-$2.log")" >&2; exit 1; }
  read_all "$mnt"
  t1=$(now)
  res=$(echo "$t1 - $t0" | bc)
  state=$(cat "$mnt/.starling/$layer.json" 2>/dev/null || cat "$mnt/.starling/${layer#sha256:}.json" 2>/dev/null || echo '{}')
  res_note=", $(jq -r '.requests // "?"' <<<"$state") requests"
  umount "$mnt"; wait $mpid 2>/dev/null || true
  unset 'pids[-1]'; unset 'mounts[-1]'
  rm -rf "$cache"
}

variants="pull lazy"
[ -z "${BASE_STARLING:-}" ] || variants="pull lazy lazy-base"
declare -A times
for link in $LINKS; do
  for i in $(seq "$RUNS"); do
    # ABBA: this VM drifts slower over back-to-back runs
    order=$variants
    [ $((i % 2)) = 1 ] || order=$(tr ' ' '\n' <<<"$variants" | tac | tr '\n' ' ')
    for variant in $order; do
      case $variant in
        pull) run_pull "$link" "$i" ;;
        lazy) run_lazy "$link" "$i" "$STARLING" ;;
        lazy-base) run_lazy "$link" "$i" "$BASE_STARLING" ;;
      esac
      echo "$link $variant run $i: $res s$res_note" >&2
      times[$link-$variant]+="$res "
    done
  done
done

# --- the same cold read in process (LazyLayer data path without FUSE), to
# tell the data path's time from the kernel/FUSE part (INPROCESS=0: skip)
inproc=""
if [ "${INPROCESS:-1}" = 1 ]; then
  scratch=${SCRATCH:-.build}
  "$repo/scripts/build-release" --scratch-path "$scratch" --product coldread-bench >&2
  cbin="$("$repo/scripts/build-release" --scratch-path "$scratch" --show-bin-path)/coldread-bench"
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

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo "warm floor (read every file of the tree on local disk): ${warm_times[*]} s (median $warm)"
for link in $LINKS; do
  for variant in $variants; do
    echo "$link $variant: ${times[$link-$variant]}s (median $(med "${times[$link-$variant]}"))"
  done
done
if [ -n "$inproc" ]; then
  echo "in-process data path (no FUSE, loopback):  ${inproc_times[*]} s (median $inproc)"
fi
for link in $LINKS; do
  pull=$(med "${times[$link-pull]}"); lazy=$(med "${times[$link-lazy]}")
  target="<= 1.0"; [ "$link" = loopback ] || target="<= 0.6"
  echo "RATIO coldread-$link: $(echo "scale=2; $lazy / $pull" | bc) (lazy cold read of every file / pull+unpack, medians; target $target; warm floor $warm s)"
  if [ -n "${BASE_STARLING:-}" ]; then
    echo "RATIO coldread-$link-vs-base: $(echo "scale=2; $lazy / $(med "${times[$link-lazy-base]}")" | bc) (lazy / lazy with BASE_STARLING)"
  fi
done
if [ -n "$inproc" ]; then
  echo "RATIO coldread-inprocess: $(echo "scale=2; $inproc / $(med "${times[loopback-pull]:-${times[wan-pull]}}")" | bc) (LazyLayer reads without FUSE, loopback / pull+unpack)"
fi
