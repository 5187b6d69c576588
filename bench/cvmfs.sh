#!/usr/bin/env bash
# CVMFS layers through Starling, two measurements in one command:
#
# 1. prepare: the Prepare of one DUCC layer of 100,000 files (1,000
#    directories of 100, plus 100 deleted files and 10 opaque directories
#    among them), `ctr-remote images rpull` of its one-layer image, with
#      http     [cvmfs] mode = "http": Starling's own client serves the
#               layer lazily; the Prepare reads the layer's catalog (one
#               object), builds its index and mounts it (no file content)
#      mounted  [cvmfs] mode = "mounted" on a repository mounted by
#               `starling cvmfs mount` (standing in for cvmfs2), with
#               servers and keys set: the whiteouts come from one query of
#               the layer's catalog, fetched by Starling's own client
#      mounted-walk  the same without servers: the whiteouts come from a
#               walk of the directory listings
#    first Prepare on a fresh node, and a second one on a new Starling
#    store (http: the layer's catalog fetched again; mounted: the whiteout
#    pair kept, `cvmfs-whiteouts` is per layer digest).
#    Prints the rpull time and the log's own timings.
#
# 2. coldstart: cold start (pull + create + run) of `python3 -c 'print(1)'`
#    in a Debian+python image on a fresh node, everything behind
#    `slowlink --rtt-ms 20 --mbit 200`:
#      cvmfs      the image's layer from a CVMFS repository over HTTP
#                 (Starling mode = "http", the stratum-1 behind the slowlink)
#      starling   the same image as eStargz from the registry through Starling
#      overlayfs  containerd's overlayfs after a full pull
#    variants alternating ABBA, medians of RUNS; then, for each cvmfs run,
#    a second cold start on the same node (once the first's read-ahead is
#    through, page cache dropped, a new container of the image): its time
#    and the bytes the stratum-1 sent for it (must be 0). The warm floor: after each overlayfs run, one more
#    container of the (local) image with a warm page cache, the least a
#    container start costs on this machine.
#
# Needs root, docker-registry, skopeo, debootstrap (first run), containerd,
# ctr, ctr-remote, runc, nginx, python3, openssl, /dev/fuse.
#   PREPARE_MODES="http mounted mounted-walk" (the prepare part's modes)
#   PULL=cri: the coldstart part pulls as Kubernetes does (one CRI PullImage,
#       through Starling's CRI proxy for Starling's variants), see coldstart.sh
#   PARTS="prepare coldstart"  RUNS=3  FILES=100000  RTT_MS=20  MBIT=200  VARIANTS="cvmfs starling overlayfs"
#   BASE_STARLING=path/to/starling: the variant cvmfs-base is cvmfs through that
#       (older) binary, for A/B of a change
#   STARLING=path/to/starling (bench/run sets it; otherwise built in .build-coldstart)
#   IDLE_TIMEOUT, BUSY_PERCENT, BUSY_WAIT, COOLDOWN, KEEP, LOG_LEVEL as in bench/coldstart.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/starling.sh"
PARTS=${PARTS:-prepare coldstart}
PULL=${PULL:-}
RUNS=${RUNS:-3}
FILES=${FILES:-100000}
RTT_MS=${RTT_MS:-20}
MBIT=${MBIT:-200}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-1800}
BUSY_PERCENT=${BUSY_PERCENT:-30}
BUSY_WAIT=${BUSY_WAIT:-120}
COOLDOWN=${COOLDOWN:-0}
LOG_LEVEL=${LOG_LEVEL:-info}
fqrn=bench.example.org
writer=$repo/Tests/Fixtures/cvmfs/make-repository.py

work=$(mktemp -d /var/tmp/starling-cvmfs-bench.XXXXXX)
pids=()
busy_notes=()
res_busy=0
. "$here/lib/node.sh"
trap cleanup_work EXIT

# --- registry, and a stratum-1 (nginx) serving $work/www/cvmfs/$fqrn
start_registry
mkdir -p "$work/www/cvmfs/$fqrn" "$work/nginx"
nport=$(free_port)
cat > "$work/nginx/nginx.conf" <<NGINX
daemon off; user root; worker_processes 1; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log;
events { worker_connections 256; }
http { access_log $work/nginx/access.log; default_type application/octet-stream;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy; fastcgi_temp_path $work/nginx/fcgi;
  uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  server { listen 127.0.0.1:$nport; root $work/www; location ~ /\.cvmfs { expires 61s; } location ~ /data/ { expires 3d; } } }
NGINX
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -e "$work/nginx/error.log" &
pids+=($!)
wait_port "$nport" || { echo "nginx did not start" >&2; exit 1; }
stratum1=http://127.0.0.1:$nport/cvmfs/@fqrn@
served_bytes() { awk '{s += $10} END {print s + 0}' "$work/nginx/access.log"; }
# Waits (up to 30 s) until the stratum-1 has served no request for 0.5 s.
server_quiet() {
  local last now
  last=$(wc -l < "$work/nginx/access.log")
  for _ in $(seq 60); do
    sleep 0.5; now=$(wc -l < "$work/nginx/access.log")
    [ "$now" != "$last" ] || return 0
    last=$now
  done
}

# Publishes LAYER_DIGEST=BLOB_FILE pairs as the repository's DUCC layers.
publish() { python3 "$writer" --out "$work/www/cvmfs/$fqrn" --fqrn "$fqrn" --keys "$work/keys" "${@/#/--layer=}" >/dev/null; }
layer_of() { # REPO:TAG -> the digest of its one layer
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$registry/v2/${1%%:*}/manifests/${1##*:}" |
    jq -r '.layers[0].digest'
}
fetch_blob() { curl -sf "http://$registry/v2/${1%%:*}/blobs/$2" -o "$3"; }

# Starling with [cvmfs] MODE and containerd in DIR. MODE: http (its own
# client serves layers), mounted (MOUNTPOINT; its own client beside it
# answers whiteout queries), mounted-walk (MOUNTPOINT, no client: whiteouts
# from a walk of the listings).
start_node() { # DIR MODE SERVERS [MOUNTPOINT]
  local dir=$1 sn=$1/run/starling.sock
  mkdir -p "$dir"
  {
    printf 'containerd_address = "%s"\n[lazy]\nbackground_fetch = false\n[cvmfs]\nmode = "%s"\nrepository = "%s"\n' \
      "$dir/containerd.sock" "${2%-walk}" "$fqrn"
    if [ "$2" = mounted-walk ]; then printf 'servers = []\n'
    else printf 'servers = ["%s"]\nkeys = ["%s"]\n' "$3" "$work/keys/master.pub"; fi
    [ -z "${4:-}" ] || printf 'mountpoint = "%s"\n' "$4"
  } > "$dir/starling.toml"
  "${NODE_STARLING:-$STARLING}" serve --config "$dir/starling.toml" --root "$dir/starling-root" --address "$sn" \
    --log-level "$LOG_LEVEL" --insecure-registry "$registry" --insecure-registry "${slow:-$registry}" >"$dir/starling.log" 2>&1 &
  pids+=($!)
  wait_socket "${pids[-1]}" "$sn" || { echo "starling serve did not start: $(tail -5 "$dir/starling.log")" >&2; exit 1; }
  start_containerd "$dir" starling "$sn"
  if [ "$2" != mounted-walk ]; then
    for _ in $(seq 600); do grep -q "CVMFS repository opened by Starling" "$dir/starling.log" && return; sleep 0.1; done
    echo "the repository was not opened: $(tail -5 "$dir/starling.log")" >&2; exit 1
  fi
}
stop_node() { stop_last TERM; stop_last INT; unmount_under "$1"; }

if [[ " $PARTS " == *" prepare "* ]]; then
  echo "making a layer of $FILES files" >&2
  python3 - "$work/big" "$FILES" <<'PY'
import os, sys
root, files = sys.argv[1], int(sys.argv[2])
per = 100
for d in range(files // per):
    path = os.path.join(root, "d%04d" % d)
    os.makedirs(path)
    for f in range(per):
        with open(os.path.join(path, "f%03d" % f), "w") as out:
            out.write("%d/%d\n" % (d, f))
for d in range(0, files // per, max(1, files // per // 100)):   # 100 deleted files
    open(os.path.join(root, "d%04d" % d, ".wh.gone"), "w").close()
for d in range(0, files // per, max(1, files // per // 10)):    # 10 opaque directories
    open(os.path.join(root, "d%04d" % d, ".wh..wh..opq"), "w").close()
PY
  "$shared/bin/rootfs-to-oci" "$work/big" "$work/big-oci" 1 >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$work/big-oci:1" "docker://$registry/big:1"
  digest=$(layer_of big:1)
  fetch_blob big "$digest" "$work/big.tar.gz"
  t0=$(now); publish "$digest=$work/big.tar.gz"; t1=$(now)
  echo "repository written in $(echo "$t1 - $t0" | bc) s ($(du -sh "$work/www" | cut -f1))" >&2
  mnt=$work/cvmfs-mount
  mkdir -p "$mnt"
  "$STARLING" cvmfs mount "http://127.0.0.1:$nport/cvmfs/$fqrn" "$mnt" --key "$work/keys/master.pub" \
    --cache-dir "$work/client-cache" >"$work/mount.log" 2>&1 &
  mountpid=$!
  for _ in $(seq 300); do [ -d "$mnt/.layers" ] && break; sleep 0.1; done
  for mode in ${PREPARE_MODES:-http mounted mounted-walk}; do
    for round in first again; do
      dir=$work/prepare-$mode-$round
      [ "$round" = first ] || [ "$mode" = http ] || { mkdir -p "$dir/starling-root"; cp -a "$work/prepare-$mode-first-pairs" "$dir/starling-root/cvmfs-whiteouts"; }
      start_node "$dir" "$mode" "$stratum1" "$mnt"
      wait_idle "prepare $mode $round"
      t0=$(now)
      ctr-remote -a "$dir/containerd.sock" -n bench images rpull --plain-http --snapshotter starling "$registry/big:1" >/dev/null
      t1=$(now)
      if [ "$mode" = http ]; then
        grep -q "format=cvmfs" "$dir/starling.log" || { echo "the layer was not served lazily from CVMFS: $(tail -5 "$dir/starling.log")" >&2; exit 1; }
        found="opened (catalog read, index built) $(grep 'format=cvmfs' "$dir/starling.log" | grep -o 'seconds=[0-9.]*' | head -1); mounted lazily $(grep 'layer mounted lazily' "$dir/starling.log" | grep -o ' seconds=[0-9.]*' | head -1)"
      else
        found=$(grep -o 'from=[a-z ]*query\|from=directory walk\|seconds=[0-9.]*\|whiteouts=[0-9]*' "$dir/starling.log" | tr '\n' ' ' || true)
        grep -q "layer used in place from CVMFS" "$dir/starling.log" || { echo "the layer was not served from CVMFS: $(tail -5 "$dir/starling.log")" >&2; exit 1; }
      fi
      printf 'prepare %-7s %-5s: rpull of the %s-file layer %.3f s; %s\n' "$mode" "$round" "$FILES" "$(echo "$t1 - $t0" | bc)" \
        "${found:-whiteout pair reused}"
      [ "$round" = again ] || [ "$mode" = http ] || cp -a "$dir/starling-root/cvmfs-whiteouts" "$work/prepare-$mode-first-pairs"
      stop_node "$dir"
    done
  done
  kill -TERM "$mountpid"; wait "$mountpid" || true
fi

if [[ " $PARTS " == *" coldstart "* ]]; then
  start_slowlink slow "$registry" slowlink.log
  start_slowlink slow_stratum1_host "127.0.0.1:$nport" slowlink-cvmfs.log
  slow_stratum1=http://$slow_stratum1_host/cvmfs/@fqrn@

  echo "building debian-python image (first run debootstraps; later runs reuse the cache)" >&2
  CACHE=${CACHE:-/var/tmp/debian-rootfs} "$shared/bin/make-debian-image" "$registry/debian-python:1" python3 >/dev/null
  start_containerd "$work/convert"
  ctr-remote -a "$work/convert/containerd.sock" -n bench images pull --plain-http "$registry/debian-python:1" >/dev/null
  ctr-remote -a "$work/convert/containerd.sock" -n bench images convert --oci --estargz \
    "$registry/debian-python:1" "$registry/debian-python:esgz" >/dev/null
  ctr-remote -a "$work/convert/containerd.sock" -n bench images push --plain-http "$registry/debian-python:esgz" >/dev/null
  stop_last TERM; unmount_under "$work/convert"; rm -rf "$work/convert"
  digest=$(layer_of debian-python:1)
  fetch_blob debian-python "$digest" "$work/python.tar.gz"
  publish "$digest=$work/python.tar.gz"
  echo "repository holds $digest" >&2

  cold_start() { # VARIANT RUN; sets res_total and, for cvmfs, res_again / res_again_bytes
    local variant=$1 i=$2 dir=$work/cold-$1-$2 c ref snapshotter t0 t1 out before
    # PULL=cri: containerd's CRI plugin too (see bench/lib/node.sh), unpacking with the variant's snapshotter.
    local CRI_SNAPSHOTTER="" CRI_REGISTRY=$slow
    if [ "$PULL" = cri ]; then
      CRI_SNAPSHOTTER=starling; [ "$variant" != overlayfs ] || CRI_SNAPSHOTTER=overlayfs
    fi
    export CRI_SNAPSHOTTER CRI_REGISTRY
    case $variant in
      overlayfs) snapshotter=overlayfs; ref=$slow/debian-python:1; start_containerd "$dir" ;;
      starling) snapshotter=starling; ref=$slow/debian-python:esgz
        mkdir -p "$dir"; printf 'containerd_address = "%s"\n[cvmfs]\nenabled = false\n' "$dir/containerd.sock" > "$dir/starling.toml"
        "$STARLING" serve --config "$dir/starling.toml" --root "$dir/starling-root" --address "$dir/run/starling.sock" \
          --log-level "$LOG_LEVEL" --insecure-registry "$slow" >"$dir/starling.log" 2>&1 &
        pids+=($!)
        wait_socket "${pids[-1]}" "$dir/run/starling.sock" || { echo "starling did not start" >&2; exit 1; }
        start_containerd "$dir" starling "$dir/run/starling.sock" ;;
      cvmfs) snapshotter=starling; ref=$slow/debian-python:1; start_node "$dir" http "$slow_stratum1" ;;
      cvmfs-base) snapshotter=starling; ref=$slow/debian-python:1
        NODE_STARLING=${BASE_STARLING:?cvmfs-base needs BASE_STARLING} start_node "$dir" http "$slow_stratum1" ;;
    esac
    c=(-a "$dir/containerd.sock" -n bench)
    local cri_socket=$dir/containerd.sock
    if [ "$PULL" = cri ]; then
      c=(-a "$dir/containerd.sock" -n k8s.io)
      [ "$snapshotter" != starling ] || cri_socket=$dir/run/cri.sock
      # The proxy answers once its connection to containerd (started after it) is up.
      for _ in $(seq 100); do python3 "$here/lib/cri.py" "$cri_socket" list 2>/dev/null && break; sleep 0.1; done
    fi
    sleep "$COOLDOWN"
    wait_idle "$variant run $i"
    local cold_before; cold_before=$(served_bytes)
    t0=$(now)
    if [ "$PULL" = cri ]; then
      python3 "$here/lib/cri.py" "$cri_socket" pull "$ref" >/dev/null
    elif [ "$variant" = overlayfs ]; then
      ctr "${c[@]}" images pull --plain-http --snapshotter overlayfs "$ref" >/dev/null
    else
      ctr-remote "${c[@]}" images rpull --plain-http --snapshotter starling "$ref" >/dev/null
    fi
    out=$(ctr "${c[@]}" run --rm --snapshotter "$snapshotter" "$ref" "cold-$i" python3 -c 'print(1)')
    t1=$(now)
    [ "$out" = 1 ] || { echo "$variant run $i: container printed '$out', not 1" >&2; exit 1; }
    res_total=$(echo "$t1 - $t0" | bc)
    res_cold_bytes=$(( $(served_bytes) - cold_before ))
    [ "$variant" != cvmfs-base ] || grep -q "format=cvmfs" "$dir/starling.log" ||
      { echo "cvmfs-base run $i: the layer was not served lazily from CVMFS" >&2; exit 1; }
    if [ "$variant" = cvmfs ]; then
      grep -q "format=cvmfs" "$dir/starling.log" || { echo "cvmfs run $i: the layer was not served lazily from CVMFS" >&2; exit 1; }
      # The same node again: a new container of the image, the page cache
      # dropped, once the first start's read-ahead is through (it may go on
      # after the container exits; its bytes are not the second start's).
      server_quiet
      sync; echo 3 > /proc/sys/vm/drop_caches
      before=$(served_bytes)
      t0=$(now)
      out=$(ctr "${c[@]}" run --rm --snapshotter starling "$ref" "again-$i" python3 -c 'print(1)')
      t1=$(now)
      [ "$out" = 1 ] || { echo "cvmfs again run $i: container printed '$out'" >&2; exit 1; }
      res_again=$(echo "$t1 - $t0" | bc); res_again_bytes=$(( $(served_bytes) - before ))
    fi
    if [ "$variant" = overlayfs ]; then
      t0=$(now)
      out=$(ctr "${c[@]}" run --rm --snapshotter overlayfs "$ref" "warm-$i" python3 -c 'print(1)')
      t1=$(now)
      [ "$out" = 1 ] || { echo "warm run $i: container printed '$out'" >&2; exit 1; }
      res_warm=$(echo "$t1 - $t0" | bc)
    fi
    stop_last TERM
    [ "$variant" = overlayfs ] || stop_last INT
    unmount_under "$dir"
    [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"
  }

  VARIANTS=${VARIANTS:-cvmfs starling overlayfs}
  declare -A total
  again=""; again_bytes=""; warm=""; cold_bytes=""
  for i in $(seq "$RUNS"); do
    order=$VARIANTS
    [ $((i % 2)) = 1 ] || order=$(tr ' ' '\n' <<<"$VARIANTS" | grep . | tac | tr '\n' ' ')
    for variant in $order; do
      cold_start "$variant" "$i"
      echo "$variant run $i: $res_total s; CPU ${res_busy}% busy just before" >&2
      total[$variant]+="$res_total "
      [ "$variant" != overlayfs ] || warm+="$res_warm "
      if [ "$variant" = cvmfs ]; then
        echo "cvmfs run $i: $res_cold_bytes bytes from the stratum-1 for the cold start (layer blob: $(stat -c %s "$work/python.tar.gz") bytes gzip)" >&2
        cold_bytes+="$res_cold_bytes "
        echo "cvmfs run $i, second start on the same node: $res_again s, $res_again_bytes bytes from the stratum-1" >&2
        again+="$res_again "; again_bytes+="$res_again_bytes "
      fi
    done
  done
  med() { tr ' ' '\n' <<<"$1" | grep . | median; }
  ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }
  for variant in $VARIANTS; do
    printf '%-9s cold start median %6.2f s; runs:%s s\n' "$variant" "$(med "${total[$variant]}")" "$(printf ' %.2f' ${total[$variant]})"
  done
  has() { [[ " $VARIANTS " == *" $1 "* ]]; }
  if has cvmfs; then
    printf 'cvmfs cold start bytes from the stratum-1: median %s; runs:%s\n' "$(med "$cold_bytes")" "$(printf ' %s' $cold_bytes)"
    printf 'cvmfs second start on the same node: median %.2f s; bytes from the stratum-1:%s\n' "$(med "$again")" "$(printf ' %s' $again_bytes)"
  fi
  ! has overlayfs ||
    printf 'warm floor (overlayfs, image local, page cache warm): median %.2f s; runs:%s s\n' "$(med "$warm")" "$(printf ' %.2f' $warm)"
  ! has cvmfs || ! has starling ||
    echo "RATIO cvmfs-http/estargz: $(ratio "$(med "${total[cvmfs]}")" "$(med "${total[starling]}")") (CVMFS over HTTP / eStargz through Starling, slowlink ${RTT_MS} ms ${MBIT} Mbit/s; goal <= 1)"
  ! has cvmfs || ! has cvmfs-base ||
    echo "RATIO cvmfs/cvmfs-base: $(ratio "$(med "${total[cvmfs]}")" "$(med "${total[cvmfs-base]}")") ($STARLING / $BASE_STARLING, CVMFS over HTTP, slowlink ${RTT_MS} ms ${MBIT} Mbit/s)"
  ! has cvmfs || ! has overlayfs ||
    echo "RATIO cvmfs-http/overlayfs: $(ratio "$(med "${total[cvmfs]}")" "$(med "${total[overlayfs]}")") (CVMFS over HTTP / overlayfs full pull)"
  ! has cvmfs ||
    echo "RATIO cvmfs-second-start-bytes: $(tr ' ' '\n' <<<"$again_bytes" | grep . | sort -n | tail -1) (most bytes any second start read from the stratum-1; goal 0)"
fi
if [ ${#busy_notes[@]} -gt 0 ]; then
  echo "note: the machine was busy:"; printf '  %s\n' "${busy_notes[@]}"
fi
