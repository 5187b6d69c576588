#!/usr/bin/env bash
# Two nodes, one site squid (docs/squid.md): cold start (fresh node: new
# containerd root, new Starling root, empty chunk cache; pull + create + run)
# of `python3 -c 'print(1)'` in a Debian+python eStargz image, with
#   direct  the node reaches the registry itself (no squid): the baseline
#   first   the first node through a squid with an empty cache
#   second  a second node through the same squid, after the first
# The registry sits behind `slowlink --rtt-ms 20 --mbit 200` (the WAN to the
# origin); the nodes reach squid on loopback (the site's LAN). squid runs
# Debian's squid with deploy/squid/starling-registry.conf included, a fresh
# cache_dir for every run, as the nodes' forward proxy
# (`[registry.host."NAME"] proxy`). Each run does all three; odd runs
# direct, first, second, even runs first, second, direct (ABBA for the
# baseline; `second` always follows `first`, that is the point). Medians of
# RUNS; the bytes the registry sent for the layer blob in each run (from
# its access log); the warm floor: a second container on the second node.
# Prints `RATIO squid-second/first` (goal <= 1.0) and `RATIO squid-first/direct`.
#
# Needs root, docker-registry, skopeo, debootstrap (first run only; the
# rootfs is cached in /var/tmp/debian-rootfs), containerd, ctr, ctr-remote,
# runc, squid, /dev/fuse.
#   STARLING=path/to/starling (otherwise a release build in .build-coldstart)
#   RUNS=3  RTT_MS=20  MBIT=200  LOG_LEVEL=info  KEEP=1 (keep the work dir)
#   IDLE_TIMEOUT, BUSY_PERCENT, BUSY_WAIT, COOLDOWN as in bench/coldstart.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/starling.sh"
RUNS=${RUNS:-3}
RTT_MS=${RTT_MS:-20}
MBIT=${MBIT:-200}
LOG_LEVEL=${LOG_LEVEL:-info}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-1800}
BUSY_PERCENT=${BUSY_PERCENT:-30}
BUSY_WAIT=${BUSY_WAIT:-120}
COOLDOWN=${COOLDOWN:-0}
image=debian-python
command=(python3 -c 'print(1)')

work=$(mktemp -d /var/tmp/starling-squid-bench.XXXXXX)
chmod 755 "$work"
pids=()
busy_notes=()
res_busy=0
. "$here/lib/node.sh"
trap cleanup_work EXIT

# --- the registry (its access log counts the bytes it sends), a slowlink in front
start_registry "$work/registry/access.log"
start_slowlink origin "$registry" slowlink.log

# --- the image: Debian + python, converted to eStargz by the reference converter
echo "building $image image (first run debootstraps; later runs reuse the cache)" >&2
CACHE=${CACHE:-/var/tmp/debian-rootfs} "$shared/bin/make-debian-image" "$registry/$image:1" python3 >/dev/null
start_containerd "$work/convert"
ctrr() { ctr-remote -a "$work/convert/containerd.sock" -n bench "$@"; }
ctrr images pull --plain-http "$registry/$image:1" >/dev/null
ctrr images convert --oci --estargz "$registry/$image:1" "$registry/$image:esgz" >/dev/null
ctrr images push --plain-http "$registry/$image:esgz" >/dev/null
stop_last TERM; unmount_under "$work/convert"; rm -rf "$work/convert"
manifest=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$registry/v2/$image/manifests/esgz")
layers=$(jq -r '.layers[].digest' <<<"$manifest")
layer_bytes=$(jq '[.layers[].size] | add' <<<"$manifest")
echo "$image:esgz: $(jq '.layers | length' <<<"$manifest") layer(s), $layer_bytes bytes" >&2
sent_bytes() { # bytes the registry sent for GETs of the image's layer blobs so far
  local d total=0 n
  for d in $layers; do
    n=$(awk -v d="/blobs/$d" '$6 == "\"GET" && index($7, d) { s += $10 } END { print s + 0 }' "$work/registry/access.log")
    total=$((total + n))
  done
  echo "$total"
}

# --- the site squid: fresh cache per run
start_squid() { # DIR: sets squid_port
  local dir=$1
  mkdir -p "$dir"; chmod 777 "$dir"
  squid_port=$(free_port)
  cat > "$dir/squid.conf" <<CONF
http_port 127.0.0.1:$squid_port
pid_filename $dir/squid.pid
access_log stdio:$dir/access.log squid
cache_log $dir/cache.log
cache_store_log none
coredump_dir $dir
cache_dir ufs $dir/cache 4096 16 256
cache_mem 256 MB
include $repo/deploy/squid/starling-registry.conf
acl localnet src 127.0.0.0/8
http_access allow localnet
http_access deny all
shutdown_lifetime 1 second
CONF
  squid -N -z -f "$dir/squid.conf" >/dev/null 2>&1
  squid -N -f "$dir/squid.conf" 2>/dev/null &
  pids+=($!)
  wait_port "$squid_port" || { echo "squid did not start: $(tail -5 "$dir/cache.log")" >&2; exit 1; }
}

# --- one cold start on a fresh node; sets res_total res_pull res_run res_warm res_note
cold_start() { # DIR PROXY(or "") WARM(0/1)
  local dir=$1 proxy=$2 warm=$3 sn t0 t1 t2 t3 out
  mkdir -p "$dir"
  sn=$dir/run/starling.sock
  {
    printf 'containerd_address = "%s"\n' "$dir/containerd.sock"
    [ -z "$proxy" ] || printf '[registry.host."%s"]\nproxy = "%s"\n' "$origin" "$proxy"
  } > "$dir/starling.toml"
  "$STARLING" serve --config "$dir/starling.toml" --root "$dir/starling-root" --address "$sn" \
    --log-level "$LOG_LEVEL" --insecure-registry "$origin" >"$dir/starling.log" 2>&1 &
  pids+=($!)
  wait_socket "${pids[-1]}" "$sn" || { echo "starling serve did not start: $(tail -5 "$dir/starling.log")" >&2; exit 1; }
  start_containerd "$dir" starling "$sn"
  local c=(-a "$dir/containerd.sock" -n bench)
  sleep "$COOLDOWN"
  wait_idle "$dir"
  t0=$(now)
  ctr-remote "${c[@]}" images rpull --plain-http --snapshotter starling "$origin/$image:esgz" >/dev/null
  t1=$(now)
  out=$(ctr "${c[@]}" run --rm --snapshotter starling "$origin/$image:esgz" cold "${command[@]}")
  t2=$(now)
  [ "$out" = 1 ] || { echo "$dir: container printed '$out', not 1" >&2; exit 1; }
  res_warm=-
  if [ "$warm" = 1 ]; then
    t3=$(now)
    out=$(ctr "${c[@]}" run --rm --snapshotter starling "$origin/$image:esgz" warm "${command[@]}")
    res_warm=$(echo "$(now) - $t3" | bc)
    [ "$out" = 1 ] || { echo "$dir: warm container printed '$out', not 1" >&2; exit 1; }
  fi
  res_note=$(cat "$dir"/starling-root/snapshots/*/fs/.starling/*.json 2>/dev/null | jq -rs \
    '"\(map(.requests) | add) requests, \(map(.fetchedBytes) | add) bytes fetched"' || true)
  grep -q 'layer mounted lazily' "$dir/starling.log" || { echo "$dir: no lazy layer: $(tail -5 "$dir/starling.log")" >&2; exit 1; }
  stop_last TERM   # containerd
  stop_last INT    # starling
  unmount_under "$dir"
  rm -rf "$dir/root" "$dir/starling-root"
  res_total=$(echo "$t2 - $t0" | bc); res_pull=$(echo "$t1 - $t0" | bc); res_run=$(echo "$t2 - $t1" | bc)
}

declare -A total sent
warms=""
for i in $(seq "$RUNS"); do
  order="direct first second"
  [ $((i % 2)) = 1 ] || order="first second direct"
  start_squid "$work/squid-$i"
  proxy=http://127.0.0.1:$squid_port
  for variant in $order; do
    before=$(sent_bytes)
    case $variant in
      direct) cold_start "$work/run$i-$variant" "" 0 ;;
      first)  cold_start "$work/run$i-$variant" "$proxy" 0 ;;
      second) cold_start "$work/run$i-$variant" "$proxy" 1; warms+="$res_warm " ;;
    esac
    s=$(( $(sent_bytes) - before ))
    warm_note=""
    [ "$res_warm" = - ] || warm_note="; then a warm container $(printf '%.2f' "$res_warm") s"
    printf 'run %s %-6s: total %.2f s (pull %.2f s, run %.2f s); registry sent %s B of the layer; starling: %s; CPU %s%% busy just before%s\n' \
      "$i" "$variant" "$res_total" "$res_pull" "$res_run" "$s" "$res_note" "$res_busy" "$warm_note" >&2
    total[$variant]+="$res_total "; sent[$variant]+="$s "
  done
  echo "run $i squid: $(awk '{print $4}' "$work/squid-$i/access.log" | sort | uniq -c | tr -s ' ' | tr '\n' ',')" >&2
  stop_last TERM   # squid (pids[-1] is squid again once the nodes are stopped)
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }
declare -A m
for variant in direct first second; do
  m[$variant]=$(med "${total[$variant]}")
  printf '%-7s cold start median %6.2f s; runs:%s s; registry sent per run:%s B (layer %s B)\n' "$variant" "${m[$variant]}" \
    "$(printf ' %.2f' ${total[$variant]})" "$(printf ' %s' ${sent[$variant]})" "$layer_bytes"
done
printf 'warm floor (a second container on the second node) median %.2f s; runs:%s s\n' "$(med "$warms")" "$(printf ' %.2f' $warms)"
echo "RATIO squid-second/first: $(ratio "${m[second]}" "${m[first]}") (second node $(printf '%.2f' "${m[second]}") s / first node $(printf '%.2f' "${m[first]}") s through one squid, origin behind slowlink rtt ${RTT_MS} ms, ${MBIT} Mbit/s; goal <= 1.0)"
echo "RATIO squid-first/direct: $(ratio "${m[first]}" "${m[direct]}") (first node through squid $(printf '%.2f' "${m[first]}") s / a node straight to the origin $(printf '%.2f' "${m[direct]}") s)"
if [ ${#busy_notes[@]} -gt 0 ]; then
  echo "note: the machine was busy:"; printf '  %s\n' "${busy_notes[@]}"
fi
