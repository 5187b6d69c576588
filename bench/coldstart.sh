#!/usr/bin/env bash
# Cold start of a container: from an empty state (fresh containerd root,
# fresh snapshotter root, empty caches) pull + create + run of the workload
# (WORKLOAD=python: `python3 -c 'print(1)'` in a Debian+python image;
# WORKLOAD=gcc: a C compile and run in a Debian+gcc image), with
#   overlayfs  containerd's own snapshotter, full `ctr images pull` + `ctr run`
#   starling   `starling serve` as proxy snapshotter, `ctr-remote images rpull`
#              of the eStargz image (ctr-remote images convert --estargz --oci)
#   index      Starling, rpull of the plain gzip image, mounted lazily from
#              the seekable index `starling index --push` made beside it
#              (SPAN_BYTES=N: its --span-bytes; INDEX_PROFILE=1: --profile
#              with the workload)
#   unpack     Starling, rpull of the plain gzip image without an index (a
#              copy in another repository): Starling's parallel streaming unpack
#   reference  containerd-stargz-grpc 0.12 (../shared/peer/build-peer.sh) as
#              proxy snapshotter `stargz`, `ctr-remote images rpull` of the same
#              eStargz image
# each directly on loopback and through `slowlink --rtt-ms 20 --mbit 200`
# in front of the registry (the image reference then names the slowlink's
# 127.0.0.1:PORT; the registry does not care which host name it is reached by).
# Median of RUNS per variant and link; the variants take turns within a run,
# in the given order in odd runs and reversed in even ones.
# After each overlayfs cold start the same container runs again with the image
# local: the warm floor, printed (WARM ...) beside the cold figures, and
# `RATIO coldstart-<workload>-<link>-<variant>/warm` for every lazy variant.
# Prints `RATIO coldstart-<link>-starling/reference: value (target <= 0.65)`
# and Starling/overlayfs, reference/overlayfs; with index and unpack also
# index/starling (target <= 1.2), unpack/overlayfs (target <= 0.6 on the
# wan link), index/overlayfs, and the index's size against the layer's.
#
# Needs root, docker-registry, skopeo, debootstrap (first run only; the
# rootfs is cached in /var/tmp/debian-rootfs), containerd, ctr, runc,
# ctr-remote, /dev/fuse; golang-go and the Debian stargz-snapshotter sources
# to build the reference daemon (build-peer.sh installs them).
#   STARLING=path/to/starling bench/coldstart.sh   (bench/run sets STARLING;
#       otherwise it is built in .build-coldstart)
#   STARGZ_GRPC=path/to/containerd-stargz-grpc     (default: built by
#       build-peer.sh into PEER_WORK, default /var/tmp/stargz-build)
#   OPTIMIZE=1: make the eStargz image with `ctr-remote images optimize`
#       (python's start-up files prioritized and prefetched) instead of convert;
#       OPTIMIZE=starling: with `starling optimize --profile` instead
#   ZSTD_CHUNKED=1: the converted image is zstd:chunked instead of gzip
#       eStargz (`--zstdchunked` for ctr-remote, `--zstd` for starling
#       optimize), for every variant that runs it. The variant starling-zstd
#       instead runs a zstd:chunked twin of the converted image, made the
#       same way, beside the gzip one (formats alternating in one run);
#       OPTIMIZE_LEVEL=N: `--level N` for starling optimize's gzip, and
#       ZSTD_LEVEL=N for its zstd (ctr-remote sets no zstd level)
#   RUNS=3  LINKS="loopback wan"  VARIANTS="overlayfs starling reference"
#       (also: starling-nobg, Starling with [lazy] background_fetch = false)
#   STARLING_TOML='[lazy]...': Starling config for experiments (default: none,
#       i.e. all defaults; starling-nobg appends its [lazy] table instead)
#   STARLING_ENV='NAME=VALUE ...': environment of `starling serve` only (glibc's
#       MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_, ... for memory experiments)
#   RTT_MS=20 MBIT=200 (the wan link)   LOG_LEVEL=info (both snapshotters)
#   IDLE_TIMEOUT=1800: seconds to wait for other compilations (swift-frontend)
#       to finish before each timed run; then it measures anyway and says so
#   BUSY_PERCENT=30 BUSY_WAIT=120: then up to BUSY_WAIT seconds for the CPUs
#       to be less than BUSY_PERCENT busy; runs started busier are listed
#   COOLDOWN=0: seconds of rest before each timed run. This VM slows down
#       over a session of back-to-back cold starts (python's cold start went
#       from 0.45 s to 0.75 s over 20 runs, back to 0.32-0.38 s after a 45 s
#       pause; 5 s rests did not stop the drift), which is why the variants
#       alternate ABBA
#   WORK_BASE=/var/tmp: where each run's containerd and snapshotter roots go.
#       This VM's root is ext4 *without a journal*: there ext4 skips inodes
#       freed in the last 60-300 s when it allocates new ones
#       (recently_deleted(), which reads the inode table for every candidate),
#       and a run that creates 8,000 files right after the previous run
#       deleted as many spends most of its time there (perf: 60 % of the
#       unpack's samples). Nodes keep containerd on a journaled filesystem;
#       a loop-mounted journaled ext4 here is one
#   SYNC=1: write back every dirty page (sync) before each timed run, so a run
#       does not pay for the previous run's writes (a pull writes ~250 MB of
#       blob and tree; its writeback overlapped the next run's unpack and made
#       the unpack figures swing between 0.48 and 0.66 of overlayfs's);
#       SYNC=0 measures as before
#   BASE_STARLING=path/to/starling: the variants starling-base, unpack-base and
#       index-base are starling, unpack and index through that (older) binary, for
#       A/B of a change; index-base reads a copy of the plain image that this
#       binary indexed (`starling index --push`, the same arguments)
#   ALT_TOML='[lazy]...': adds the variant starling-alt, the eStargz image
#       through Starling with that config instead of STARLING_TOML (A/B of
#       a setting within one run)
#   LOAD=N: N busy loops at nice 0 run through each timed cold start (and
#       its warm floor), as other pods' work on a busy node; 0 by default
#   KEEP=1 keeps the work directory (daemon logs) for inspection
#   WORKLOAD=python (default: `python3 -c 'print(1)'` in the Debian+python
#       image), gcc (compile and run a C program in a Debian+gcc image) or
#       readall (read every file of the Debian+python image's root)
#   Peak resident memory (VmHWM) of each snapshotter daemon is read when the
#       container has exited and printed per variant (medians); see
#       bench/memory.sh, which runs the three workloads.
#   SMAPS=1: also write where each daemon's resident pages are, per mapping
#       (/proc/PID/smaps summed by file, anonymous apart), to
#       bench/out/WORKLOAD-LINK-VARIANT-runN.smaps when the container has exited
#   TIMELINE=1: write each run's marks (rpull, ctr run, python's first line)
#       to its work directory, for bench/timeline.sh (with KEEP=1)
#   PULL=cri: pull as Kubernetes does instead of `ctr images pull` / `rpull`:
#       containerd's CRI plugin runs (snapshotter: the variant's, labels on)
#       and the image comes with one CRI PullImage (bench/lib/cri.py), for
#       Starling variants through Starling's CRI proxy (as kubelet's
#       imageServiceEndpoint), for the others to containerd's CRI socket;
#       the container then runs in namespace k8s.io. Its python client adds
#       the same ~30 ms to every variant's pull
#   PROFILE=massif|heaptrack: run `starling serve` under valgrind's massif
#       or heaptrack (timings are then meaningless); the profile is copied to
#       bench/out/ (ms_print / heaptrack_print read it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/starling.sh"
VARIANTS=${VARIANTS:-overlayfs starling reference}
WORKLOAD=${WORKLOAD:-python}
if [ -z "${STARGZ_GRPC:-}" ] && [[ " $VARIANTS " == *" reference "* ]]; then
  PEER_WORK=${PEER_WORK:-/var/tmp/stargz-build}
  STARGZ_GRPC=$PEER_WORK/bin/containerd-stargz-grpc
  if [ ! -x "$STARGZ_GRPC" ]; then
    echo "building the reference daemon (build-peer.sh, WORK=$PEER_WORK)" >&2
    WORK=$PEER_WORK sh "$shared/peer/build-peer.sh" >&2
  fi
fi
RUNS=${RUNS:-3}
LINKS=${LINKS:-loopback wan}
RTT_MS=${RTT_MS:-20}
MBIT=${MBIT:-200}
LOG_LEVEL=${LOG_LEVEL:-info}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-1800}
BUSY_PERCENT=${BUSY_PERCENT:-30}
BUSY_WAIT=${BUSY_WAIT:-120}
COOLDOWN=${COOLDOWN:-0}
SYNC=${SYNC:-1}
PULL=${PULL:-}
case $PULL in ""|cri) ;; *) echo "unknown PULL $PULL (cri)" >&2; exit 1 ;; esac
PROFILE=${PROFILE:-}
case $WORKLOAD in
  python)  image=debian-python; packages=python3; command=(python3 -c 'print(1)')
           # TIMELINE=1: the program also says (on stderr) when its own code began
           [ "${TIMELINE:-0}" != 1 ] || command=(python3 -c 'import sys, time; print(time.time(), "python runs its first line", file=sys.stderr); print(1)') ;;
  gcc)     image=debian-gcc; packages="gcc libc6-dev"
           command=(sh -c 'printf "#include <stdio.h>\nint main(void) { puts(\"1\"); return 0; }\n" > /tmp/a.c && gcc -O2 -o /tmp/a /tmp/a.c && /tmp/a') ;;
  readall) image=debian-python; packages=python3
           command=(sh -c 'find / -xdev -type f -print0 | xargs -0 cat > /dev/null && echo 1') ;;
  *) echo "unknown WORKLOAD $WORKLOAD (python, gcc, readall)" >&2; exit 1 ;;
esac

work=$(mktemp -d "${WORK_BASE:-/var/tmp}/starling-coldstart.XXXXXX")
pids=()

. "$here/lib/node.sh"
trap cleanup_work EXIT

# --- registry on loopback, and a slowlink in front of it
start_registry
start_slowlink slow "$registry" slowlink.log

# --- the gzip image (debootstrap once, cached)
echo "building $image image (first run debootstraps; later runs reuse the cache)" >&2
# shellcheck disable=SC2086 # the package list is words
CACHE=${CACHE:-/var/tmp/debian-rootfs} "$shared/bin/make-debian-image" "$registry/$image:1" $packages >/dev/null
index_args=(--push --insecure-registry "$registry")
[ -z "${SPAN_BYTES:-}" ] || index_args+=(--span-bytes "$SPAN_BYTES")
[ "${INDEX_PROFILE:-0}" != 1 ] || index_args+=(--profile -- "${command[@]}")
if [[ " $VARIANTS " == *" index "* ]]; then
  "$STARLING" index "$registry/$image:1" "${index_args[@]}" > "$work/index.json"
  jq -r '.layers[] | "INDEX layer \(.digest): \(.size) bytes, index \(.indexSize) bytes (\(100 * .indexSize / .size | . * 100 | round / 100)%), \(.checkpoints) checkpoints, \(.files) files, \(.prioritized) prioritized"' \
    "$work/index.json"
fi
if [[ " $VARIANTS " == *" index-base "* ]]; then
  # The base binary's own index, beside a copy of the image (referrers are per repository).
  skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$registry/$image:1" "docker://$registry/$image-baseindex:1"
  "${BASE_STARLING:?index-base needs BASE_STARLING}" index "$registry/$image-baseindex:1" "${index_args[@]}" > "$work/index-base.json"
  jq -r '.layers[] | "INDEX (base) layer \(.digest): \(.size) bytes, index \(.indexSize) bytes (\(100 * .indexSize / .size | . * 100 | round / 100)%), \(.checkpoints) checkpoints"' \
    "$work/index-base.json"
fi
if [[ " $VARIANTS " == *" unpack "* || " $VARIANTS " == *" unpack-base "* ]]; then
  # The same image where no index refers to it (referrers are per repository).
  skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$registry/$image:1" "docker://$registry/$image-noindex:1"
fi

# --- convert to eStargz with the reference converter and push it
start_containerd "$work/convert"
ctrr() { ctr-remote -a "$work/convert/containerd.sock" -n bench "$@"; }
ctrr images pull --plain-http "$registry/$image:1" >/dev/null
# convert TAG ZSTD: the converted image as $image:TAG, zstd:chunked when ZSTD=1.
convert() {
  local tag=$1 reference_format=() starling_format=()
  if [ "$2" = 1 ]; then
    reference_format=(--zstdchunked); starling_format=(--zstd)
    [ -z "${ZSTD_LEVEL:-}" ] || starling_format+=(--level "$ZSTD_LEVEL")
  else
    [ -z "${OPTIMIZE_LEVEL:-}" ] || starling_format+=(--level "$OPTIMIZE_LEVEL")
  fi
  if [ "${OPTIMIZE:-0}" = starling ]; then
    # Starling's own converter, profiling the same workload under runc.
    "$STARLING" optimize --profile --insecure-registry "$registry" "${starling_format[@]}" \
      "$registry/$image:1" "$registry/$image:$tag" -- "${command[@]}" >/dev/null
    return
  elif [ "${OPTIMIZE:-0}" = 1 ]; then
    # Profile the workload: the files python reads at start-up become the
    # prioritized files (before .prefetch.landmark), prefetched at mount.
    json() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }
    entrypoint=$(json "${command[0]}")
    arguments=$(json "${command[@]:1}")
    ctrr images optimize --oci --period 5 --entrypoint "$entrypoint" --args "$arguments" "${reference_format[@]}" \
      "$registry/$image:1" "$registry/$image:$tag" >/dev/null
  else
    ctrr images convert --oci --estargz "${reference_format[@]}" "$registry/$image:1" "$registry/$image:$tag" >/dev/null
  fi
  ctrr images push --plain-http "$registry/$image:$tag" >/dev/null
}
convert esgz "${ZSTD_CHUNKED:-0}"
[[ " $VARIANTS " != *" starling-zstd "* ]] || convert zstd 1
stop_last TERM; unmount_under "$work/convert"; rm -rf "$work/convert"
for tag in 1 esgz $([[ " $VARIANTS " != *" starling-zstd "* ]] || echo zstd); do
  m=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$registry/v2/$image/manifests/$tag")
  echo "$image:$tag: $(jq '.layers | length' <<<"$m") layer(s), $(jq '[.layers[].size] | add' <<<"$m") bytes" >&2
done

# containerd for one cold start; with PULL=cri its CRI plugin too, unpacking
# with the variant's snapshotter.
node_containerd() { # DIR [PROXY_NAME PROXY_SOCKET]
  if [ "$PULL" = cri ]; then
    CRI_SNAPSHOTTER=$snapshotter CRI_REGISTRY=$host start_containerd "$@"
  else
    start_containerd "$@"
  fi
}

# --- one cold start: fresh daemons, then timed pull + run
# Sets res_total, res_pull, res_run (seconds).
cold_start() { # LINK VARIANT RUN
  local link=$1 variant=$2 i=$3 host dir sn ref snapshotter out t0 t1 t2
  case $link in loopback) host=$registry ;; wan) host=$slow ;; *) echo "unknown link $link" >&2; exit 1 ;; esac
  dir=$work/$link-$variant-$i
  mkdir -p "$dir"
  case $variant in
    overlayfs)
      snapshotter=overlayfs; ref=$host/$image:1
      node_containerd "$dir" ;;
    starling|starling-nobg|starling-base|starling-alt|starling-zstd|index|index-base|unpack|unpack-base)
      snapshotter=starling; ref=$host/$image:esgz; sn=$dir/run/starling.sock
      bin=$STARLING
      [[ "$variant" != *-base ]] || bin=${BASE_STARLING:?$variant needs BASE_STARLING}
      [ "$variant" != index ] || ref=$host/$image:1
      [ "$variant" != starling-zstd ] || ref=$host/$image:zstd
      [ "$variant" != index-base ] || ref=$host/$image-baseindex:1
      [ "${variant%-base}" != unpack ] || ref=$host/$image-noindex:1
      # containerd's socket is not at its default path here: tell Starling.
      toml=${STARLING_TOML:-}
      [ "$variant" != starling-nobg ] || toml=$(printf '[lazy]\nbackground_fetch = false')
      [ "$variant" != starling-alt ] || toml=${ALT_TOML:?starling-alt needs ALT_TOML}
      printf 'containerd_address = "%s"\n%s\n' "$dir/containerd.sock" "$toml" > "$dir/starling.toml"
      profiler=()
      case $PROFILE in
        massif) profiler=(valgrind --tool=massif --massif-out-file="$dir/massif.out") ;;
        # The preload library directly, not the heaptrack script: the
        # script would stand between the daemon and the SIGINT that stops
        # it; the raw trace is interpreted after the run.
        heaptrack) profiler=(env LD_PRELOAD=/usr/lib/heaptrack/libheaptrack_preload.so
                             DUMP_HEAPTRACK_OUTPUT="$dir/heaptrack.raw") ;;
        "") ;;
        *) echo "unknown PROFILE $PROFILE (massif, heaptrack)" >&2; exit 1 ;;
      esac
      # shellcheck disable=SC2086 # STARLING_ENV is NAME=VALUE words
      env ${STARLING_ENV:-} "${profiler[@]}" "$bin" serve --config "$dir/starling.toml" --root "$dir/starling-root" --address "$sn" \
        --log-level "$LOG_LEVEL" --insecure-registry "$host" >"$dir/starling.log" 2>&1 &
      pids+=($!)
      wait_socket "${pids[-1]}" "$sn" || { echo "starling serve did not start: $(tail -5 "$dir/starling.log")" >&2; exit 1; }
      node_containerd "$dir" starling "$sn" ;;
    reference)
      snapshotter=stargz; ref=$host/$image:esgz; sn=$dir/run/stargz.sock
      cat > "$dir/stargz.toml" <<TOML
[[resolver.host."$host".mirrors]]
host = "$host"
insecure = true
TOML
      "$STARGZ_GRPC" -root "$dir/stargz-root" -address "$sn" -config "$dir/stargz.toml" -log-level "$LOG_LEVEL" \
        >"$dir/stargz.log" 2>&1 &
      pids+=($!)
      wait_socket "${pids[-1]}" "$sn" || { echo "containerd-stargz-grpc did not start: $(tail -5 "$dir/stargz.log")" >&2; exit 1; }
      node_containerd "$dir" stargz "$sn" ;;
    *) echo "unknown variant $variant" >&2; exit 1 ;;
  esac
  local c=(-a "$dir/containerd.sock" -n bench) cri_socket=$dir/containerd.sock
  if [ "$PULL" = cri ]; then
    c=(-a "$dir/containerd.sock" -n k8s.io)
    [ "$snapshotter" != starling ] || cri_socket=$dir/run/cri.sock
    # The proxy answers once its connection to containerd (started after it) is up.
    for _ in $(seq 100); do python3 "$here/lib/cri.py" "$cri_socket" list 2>/dev/null && break; sleep 0.1; done
  fi
  [ "$SYNC" != 1 ] || sync
  sleep "$COOLDOWN"
  wait_idle "$link $variant run $i"
  start_load
  t0=$(now)
  [ "${TIMELINE:-0}" != 1 ] || echo "$t0 rpull starts" >> "$dir/marks"
  if [ "$PULL" = cri ]; then
    python3 "$here/lib/cri.py" "$cri_socket" pull "$ref" >/dev/null
  elif [ "$variant" = overlayfs ]; then
    ctr "${c[@]}" images pull --plain-http --snapshotter overlayfs "$ref" >/dev/null
  else
    ctr-remote "${c[@]}" images rpull --plain-http --snapshotter "$snapshotter" "$ref" >/dev/null
  fi
  t1=$(now)
  [ "${TIMELINE:-0}" != 1 ] || echo "$t1 rpull returned; ctr run starts" >> "$dir/marks"
  out=$(ctr "${c[@]}" run --rm --snapshotter "$snapshotter" "$ref" "coldstart-$i" "${command[@]}" 2>>"$dir/marks")
  t2=$(now)
  [ "${TIMELINE:-0}" != 1 ] || echo "$t2 ctr run returned" >> "$dir/marks"
  [ "$out" = 1 ] || { echo "$link $variant run $i: container printed '$out', not 1" >&2; exit 1; }
  res_warm=""
  if [ "$variant" = overlayfs ]; then
    # The warm floor: the same container again, the image now local.
    local t3 t4
    t3=$(now)
    out=$(ctr "${c[@]}" run --rm --snapshotter overlayfs "$ref" "warmstart-$i" "${command[@]}")
    t4=$(now)
    if [ -z "$out" ]; then
      # Seen once with gcc: ctr returned 0 with none of the container's
      # output (containerd and overlayfs alone, no Starling). Time it again.
      echo "$link warm run $i: ctr printed nothing; running it once more" >&2
      t3=$(now)
      out=$(ctr "${c[@]}" run --rm --snapshotter overlayfs "$ref" "warmstart-$i-again" "${command[@]}")
      t4=$(now)
    fi
    [ "$out" = 1 ] || { echo "$link warm run $i: container printed '$out', not 1" >&2; exit 1; }
    res_warm=$(echo "$t4 - $t3" | bc)
  fi
  stop_load
  # The snapshotter daemon started just before containerd: its peak resident memory so far.
  res_rss=- res_split=
  if [ "$variant" != overlayfs ]; then
    res_rss=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/${pids[-2]}/status" 2>/dev/null || echo -)
    # What is resident now, heap and stacks (anonymous) apart from the
    # pages of the binary and its libraries (file): says which one the peak grew.
    res_split=$(awk '/^(RssAnon|RssFile):/ {v[$1]=$2} /^Threads:/ {t=$2} END {printf "anon %.1f MB, file %.1f MB, %d threads", v["RssAnon:"] / 1024, v["RssFile:"] / 1024, t}' \
      "/proc/${pids[-2]}/status" 2>/dev/null || true)
    if [ "${SMAPS:-0}" = 1 ]; then
      awk '/^[0-9a-f]+-[0-9a-f]+ / {name = NF >= 6 ? $6 " (" $2 ")" : "[anonymous]"} /^Rss:/ {rss[name] += $2}
           END {for (n in rss) if (rss[n] >= 64) printf "%8.1f MB  %s\n", rss[n] / 1024, n}' \
        "/proc/${pids[-2]}/smaps" 2>/dev/null | sort -rn >"$here/out/$WORKLOAD-$link-$variant-run$i.smaps" || true
    fi
  fi
  res_note=""
  if [ "$snapshotter" = starling ]; then # Starling's own account of the lazy layer(s)
    res_note=$(cat "$dir"/starling-root/snapshots/*/fs/.starling/*.json 2>/dev/null | jq -rs \
      '", starling: \(map(.requests) | add) requests, \(map(.fetchedBytes) | add) bytes fetched when the container exited"' || true)
    [ "$variant" != unpack ] || res_note=", starling: $(grep -c 'layer unpacked' "$dir/starling.log" || true) layer(s) unpacked"
  fi
  # stop containerd, then the snapshotter (SIGINT: the reference daemon unmounts on SIGINT only)
  stop_last TERM
  [ "$variant" = overlayfs ] || stop_last INT
  unmount_under "$dir"
  if [ -n "$PROFILE" ] && [ "$snapshotter" = starling ]; then
    mkdir -p "$repo/bench/out"
    if [ -e "$dir/heaptrack.raw" ]; then
      /usr/lib/heaptrack/libexec/heaptrack_interpret < "$dir/heaptrack.raw" | zstd -q -c > "$dir/heaptrack.zst"
      rm -f "$dir/heaptrack.raw"
    fi
    for f in "$dir"/massif.out "$dir"/heaptrack.zst; do
      [ -e "$f" ] && cp "$f" "$repo/bench/out/$WORKLOAD-$link-run$i.$(basename "$f")" && echo "profile: bench/out/$WORKLOAD-$link-run$i.$(basename "$f")" >&2
    done
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    rm -rf "$dir/root" "$dir/starling-root" "$dir/stargz-root"
  else
    rm -rf "$dir"
  fi
  res_total=$(echo "$t2 - $t0" | bc); res_pull=$(echo "$t1 - $t0" | bc); res_run=$(echo "$t2 - $t1" | bc)
}

# LOAD=N: other work on the node while a container starts.
LOAD=${LOAD:-0}
load_pids=()
start_load() {
  local n
  for n in $(seq "$LOAD"); do sh -c 'while :; do :; done' & load_pids+=($!); done
}
stop_load() {
  [ ${#load_pids[@]} -eq 0 ] || { kill "${load_pids[@]}" 2>/dev/null; wait "${load_pids[@]}" 2>/dev/null || true; }
  load_pids=()
}
trap 'stop_load; cleanup_work' EXIT

# The daemons' binaries start with none of their pages in the page cache:
# a binary just built or copied is there whole, and the kernel's
# fault-around (it maps the cached pages around each one touched) then
# makes more of it resident, so a fresh build of the same code peaked
# higher than the copy that had been run before.
evict_from_page_cache "$STARLING" "${BASE_STARLING:-}" "${STARGZ_GRPC:-}"
declare -A total pull run rss warm
for link in $LINKS; do
  for i in $(seq "$RUNS"); do
    # Odd runs in the given order, even runs reversed (ABBA): the machine
    # drifts slower over a session, and a fixed order would hand one variant
    # the later, slower slot every time.
    order=$VARIANTS
    [ $((i % 2)) = 1 ] || order=$(tr ' ' '\n' <<<"$VARIANTS" | grep . | tac | tr '\n' ' ')
    for variant in $order; do
      cold_start "$link" "$variant" "$i"
      echo "$link $variant run $i: total $res_total s (pull $res_pull s, run $res_run s), peak RSS $res_rss MB${res_split:+ (at exit: $res_split)}$res_note; CPU ${res_busy}% busy just before" >&2
      [ "$res_busy" -lt "$BUSY_PERCENT" ] || busy_notes+=("$link $variant run $i: CPU ${res_busy}% busy just before")
      total[$link-$variant]+="$res_total "; pull[$link-$variant]+="$res_pull "; run[$link-$variant]+="$res_run "
      [ "$res_rss" = - ] || rss[$link-$variant]+="$res_rss "
      if [ -n "$res_warm" ]; then
        echo "$link warm start run $i (overlayfs, image local): $res_warm s" >&2
        warm[$link]+="$res_warm "
      fi
    done
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }
link_desc() { if [ "$1" = wan ]; then echo "slowlink rtt ${RTT_MS} ms, ${MBIT} Mbit/s"; else echo "loopback"; fi; }
declare -A m
for link in $LINKS; do
  for variant in $VARIANTS; do
    k=$link-$variant
    m[$k]=$(med "${total[$k]}")
    printf '%-9s %-13s cold start median %6.2f s (pull %.2f s + run %.2f s); runs:%s s\n' "$link" "$variant" \
      "${m[$k]}" "$(med "${pull[$k]}")" "$(med "${run[$k]}")" "$(printf ' %.2f' ${total[$k]})"
    if [ -n "${rss[$k]:-}" ]; then
      printf 'RSS %s %s %s: peak resident memory median %s MB; runs: %s MB\n' "$WORKLOAD" "$link" "$variant" \
        "$(med "${rss[$k]}")" "${rss[$k]% }"
    fi
  done
done
for link in $LINKS; do
  d=$(link_desc "$link")
  if [ -n "${warm[$link]:-}" ]; then
    w=$(med "${warm[$link]}")
    echo "WARM $WORKLOAD $link: warm start (ctr run, image already local, overlayfs) median $w s; runs:$(printf ' %.2f' ${warm[$link]}) s"
    for variant in $VARIANTS; do
      [ "$variant" != overlayfs ] || continue
      echo "RATIO coldstart-$WORKLOAD-$link-$variant/warm: $(ratio "${m[$link-$variant]}" "$w") ($variant cold start ${m[$link-$variant]} s / warm start $w s, $d; target for Starling's optimized image on loopback <= 1.5)"
    done
  fi
  if [ -n "${m[$link-starling]:-}" ] && [ -n "${m[$link-reference]:-}" ]; then
    echo "RATIO coldstart-$link-starling/reference: $(ratio "${m[$link-starling]}" "${m[$link-reference]}") (Starling ${m[$link-starling]} s / containerd-stargz-grpc ${m[$link-reference]} s, $d; target <= 0.65)"
  fi
  if [ -n "${m[$link-starling]:-}" ] && [ -n "${m[$link-starling-alt]:-}" ]; then
    echo "RATIO coldstart-$WORKLOAD-$link-starling-alt/starling: $(ratio "${m[$link-starling-alt]}" "${m[$link-starling]}") (with ALT_TOML ${m[$link-starling-alt]} s / without ${m[$link-starling]} s, $d)"
  fi
  if [ -n "${m[$link-starling]:-}" ] && [ -n "${m[$link-starling-zstd]:-}" ]; then
    echo "RATIO coldstart-$WORKLOAD-$link-starling-zstd/starling: $(ratio "${m[$link-starling-zstd]}" "${m[$link-starling]}") (the image as zstd:chunked ${m[$link-starling-zstd]} s / as eStargz ${m[$link-starling]} s, both Starling, $d)"
  fi
  for kind in starling index unpack; do
    if [ -n "${m[$link-$kind]:-}" ] && [ -n "${m[$link-$kind-base]:-}" ]; then
      echo "RATIO coldstart-$WORKLOAD-$link-$kind/$kind-base: $(ratio "${m[$link-$kind]}" "${m[$link-$kind-base]}") ($STARLING ${m[$link-$kind]} s / $BASE_STARLING ${m[$link-$kind-base]} s, $d, LOAD=$LOAD)"
    fi
  done
  if [ -n "${m[$link-starling]:-}" ] && [ -n "${m[$link-overlayfs]:-}" ]; then
    echo "RATIO coldstart-$link-starling/overlayfs: $(ratio "${m[$link-starling]}" "${m[$link-overlayfs]}") (Starling lazy pull ${m[$link-starling]} s / overlayfs full pull ${m[$link-overlayfs]} s, $d)"
  fi
  if [ -n "${m[$link-starling-nobg]:-}" ] && [ -n "${m[$link-reference]:-}" ]; then
    echo "RATIO coldstart-$link-starling-nobg/reference: $(ratio "${m[$link-starling-nobg]}" "${m[$link-reference]}") (Starling without background fetch ${m[$link-starling-nobg]} s / containerd-stargz-grpc ${m[$link-reference]} s, $d; diagnostic)"
  fi
  if [ -n "${m[$link-index]:-}" ] && [ -n "${m[$link-starling]:-}" ]; then
    echo "RATIO coldstart-$WORKLOAD-$link-index/estargz: $(ratio "${m[$link-index]}" "${m[$link-starling]}") (plain image with a gzip index ${m[$link-index]} s / the same as eStargz ${m[$link-starling]} s, both Starling, $d; target <= 1.2)"
  fi
  if [ -n "${m[$link-index]:-}" ] && [ -n "${m[$link-overlayfs]:-}" ]; then
    echo "RATIO coldstart-$WORKLOAD-$link-index/overlayfs: $(ratio "${m[$link-index]}" "${m[$link-overlayfs]}") (plain image with a gzip index ${m[$link-index]} s / overlayfs full pull ${m[$link-overlayfs]} s, $d)"
  fi
  if [ -n "${m[$link-unpack]:-}" ] && [ -n "${m[$link-overlayfs]:-}" ]; then
    echo "RATIO coldstart-$WORKLOAD-$link-unpack/overlayfs: $(ratio "${m[$link-unpack]}" "${m[$link-overlayfs]}") (plain image, Starling's parallel unpack ${m[$link-unpack]} s / overlayfs full pull ${m[$link-overlayfs]} s, $d; target <= 0.6 on the wan link)"
  fi
  if [ -n "${m[$link-reference]:-}" ] && [ -n "${m[$link-overlayfs]:-}" ]; then
    echo "RATIO coldstart-$link-reference/overlayfs: $(ratio "${m[$link-reference]}" "${m[$link-overlayfs]}") (containerd-stargz-grpc ${m[$link-reference]} s / overlayfs ${m[$link-overlayfs]} s, $d)"
  fi
done
if [ ${#busy_notes[@]} -gt 0 ]; then
  echo "note: the machine was busy:"; printf '  %s\n' "${busy_notes[@]}"
fi
