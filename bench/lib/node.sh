# Helpers of the node benchmarks (sourced by bench/coldstart.sh, coldread.sh,
# cvmfs.sh and squid.sh): clocks and medians, free ports, waiting for sockets
# and for a quiet machine, a private containerd per run, the registry and
# slowlink, cleaning up. They use the caller's globals: work (temp dir), pids
# (processes to stop), shared (../shared), RTT_MS, MBIT, IDLE_TIMEOUT,
# BUSY_PERCENT, BUSY_WAIT, busy_notes, res_busy.

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
free_port() {
  local p
  while :; do
    p=$(shuf -i 20000-60000 -n 1)
    (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
  done
}
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; return 1; }
wait_socket() { # PID SOCKET: until the socket accepts connections (or the process died)
  for _ in $(seq 300); do
    kill -0 "$1" 2>/dev/null || return 1
    [ -S "$2" ] && python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$2" 2>/dev/null && return
    sleep 0.1
  done
  return 1
}
# Other engineers compile on this machine: wait until no swift-frontend runs.
busy_notes=()
wait_idle() {
  local waited=0 n
  while n=$(pgrep -c swift-frontend || true); [ "${n:-0}" != 0 ]; do
    [ $waited = 0 ] && echo "waiting for $n swift-frontend process(es) to finish ($1)" >&2
    if [ $waited -ge "$IDLE_TIMEOUT" ]; then
      busy_notes+=("$1: $n swift-frontend still running after ${waited}s, measured anyway")
      echo "machine still busy after ${waited}s; measuring $1 anyway" >&2
      res_busy=$(cpu_busy)
      return
    fi
    sleep 5; waited=$((waited + 5))
  done
  [ $waited = 0 ] || busy_notes+=("$1: waited ${waited}s for compilations to finish")
  # then up to BUSY_WAIT seconds for the CPUs to calm down (another benchmark, a fuzzer)
  waited=0
  while res_busy=$(cpu_busy); [ "$res_busy" -ge "$BUSY_PERCENT" ] && [ $waited -lt "$BUSY_WAIT" ]; do
    sleep 2; waited=$((waited + 3))
  done
}

cpu_busy() { # percent of all CPUs busy over the last 0.5 s (everything, our own daemons included)
  local a b a1 a2 a3 a4 a5 a6 a7 b1 b2 b3 b4 b5 b6 b7
  read -r _ a1 a2 a3 a4 a5 a6 a7 _ < /proc/stat; sleep 0.5
  read -r _ b1 b2 b3 b4 b5 b6 b7 _ < /proc/stat
  a=$(( (b1+b2+b3+b6+b7) - (a1+a2+a3+a6+a7) )); b=$(( a + b4 + b5 - a4 - a5 ))
  echo $(( b > 0 ? 100 * a / b : 0 ))
}

# --- a private containerd (own root, state, socket), optionally with a proxy snapshotter
# With CRI_SNAPSHOTTER=NAME (and CRI_REGISTRY=HOST:PORT, reached over plain
# HTTP) containerd's CRI plugin runs too, unpacking with that snapshotter and
# passing its snapshot labels, as on a Kubernetes node.
start_containerd() { # DIR [PROXY_NAME PROXY_SOCKET]
  local dir=$1 cri=""
  mkdir -p "$dir/root" "$dir/state" "$dir/opt"
  [ -n "${CRI_SNAPSHOTTER:-}" ] || cri='"io.containerd.grpc.v1.cri", '
  cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = [$cri"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
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
  if [ $# -ge 3 ]; then
    printf '[proxy_plugins.%s]\n  type = "snapshot"\n  address = "%s"\n' "$2" "$3" >> "$dir/config.toml"
  fi
  if [ -n "${CRI_SNAPSHOTTER:-}" ]; then
    mkdir -p "$dir/cni/bin" "$dir/cni/conf"
    cat >> "$dir/config.toml" <<TOML
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$CRI_SNAPSHOTTER"
    disable_snapshot_annotations = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$dir/cni/bin"
    conf_dir = "$dir/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${CRI_REGISTRY:?CRI_SNAPSHOTTER needs CRI_REGISTRY}"]
    endpoint = ["http://$CRI_REGISTRY"]
TOML
  fi
  containerd --config "$dir/config.toml" --log-level "${CONTAINERD_LOG_LEVEL:-info}" >"$dir/containerd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$dir/containerd.sock" ] && ctr -a "$dir/containerd.sock" version >/dev/null 2>&1 && return; sleep 0.1; done
  echo "containerd did not start: $(tail -5 "$dir/containerd.log")" >&2; exit 1
}
stop_last() { # SIGNAL: stops the newest process in pids
  local pid=${pids[-1]}
  kill -"$1" "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset 'pids[-1]'
}
evict_from_page_cache() { # FILE...: written back, then their pages dropped from the page cache
  sync
  python3 - "$@" <<'PY'
import os, sys
for path in sys.argv[1:]:
    if path and os.path.isfile(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
PY
}
unmount_under() { { grep -o " $1[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done; }

# Removes what a benchmark started: its processes, the overlay and FUSE
# mounts under $work, and $work itself (KEEP=1 keeps it, logs and all).
cleanup_work() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  { grep -o " $work[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}

# A docker-registry on loopback with its storage in $work/registry; sets
# `registry` (127.0.0.1:PORT). ACCESS_LOG: write its access log there (the
# registry logs requests on standard output).
start_registry() { # [ACCESS_LOG]
  local port disabled=true out=/dev/null
  [ -z "${1:-}" ] || { disabled=false; out=$1; }
  port=$(free_port)
  mkdir -p "$work/registry"
  cat > "$work/registry/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: $disabled}}
storage: {filesystem: {rootdirectory: $work/registry/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YAML
  docker-registry serve "$work/registry/config.yml" >"$out" 2>"$work/registry/log" &
  pids+=($!)
  wait_port "$port" || { echo "registry did not start" >&2; exit 1; }
  registry=127.0.0.1:$port
}

# slowlink (RTT_MS, MBIT) in front of UPSTREAM (HOST:PORT); sets the
# variable named VAR to its 127.0.0.1:PORT. Its log goes to $work/LOG.
start_slowlink() { # VAR UPSTREAM LOG
  local port
  port=$(free_port)
  "$shared/bin/slowlink" --listen "127.0.0.1:$port" --upstream "$2" --rtt-ms "$RTT_MS" --mbit "$MBIT" \
    --max-seconds 86400 2>"$work/$3" &
  pids+=($!)
  wait_port "$port" || { echo "slowlink did not start" >&2; exit 1; }
  printf -v "$1" '%s' "127.0.0.1:$port"
}
