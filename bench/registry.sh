#!/usr/bin/env bash
# Registry client benchmark: 64 parallel 64 KiB range reads of one blob
# through slowlink (RTT 20 ms, 200 Mbit/s) against the ideal (bytes/bandwidth
# + one RTT) and against the same reads done sequentially; also counts the
# connections libcurl opened to show they are reused.
#   bench/registry.sh            # defaults
#   RTT_MS=50 MBIT=100 READS=128 bench/registry.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
RTT_MS=${RTT_MS:-20}
MBIT=${MBIT:-200}
READS=${READS:-64}
READ_SIZE=${READ_SIZE:-65536}

shared_bin=${STARLING_SHARED_BIN:-}
for candidate in "$shared_bin" "$repo/../shared/bin" "$repo/../../shared/bin" /work/shared/bin; do
  if [ -n "$candidate" ] && [ -x "$candidate/slowlink" ]; then shared_bin=$candidate; break; fi
done
[ -x "$shared_bin/slowlink" ] || { echo "registry.sh: slowlink not found (set STARLING_SHARED_BIN)" >&2; exit 1; }

cd "$repo"
scratch=${SCRATCH:-.build}
scripts/build-release --scratch-path "$scratch" --product registry-bench >&2
bench_bin="$(scripts/build-release --scratch-path "$scratch" --show-bin-path)/registry-bench"

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

registry_port=$(free_port)
cat > "$work/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/storage}}
http: {addr: 127.0.0.1:$registry_port}
YAML
docker-registry serve "$work/registry.yml" 2>"$work/registry.log" & pids+=($!)
wait_port "$registry_port"

# An image with one 8 MiB incompressible layer.
mkdir -p "$work/rootfs"
head -c $((8 << 20)) /dev/urandom > "$work/rootfs/blob.bin"
tar -C "$work/rootfs" -cf - . | gzip -1 > "$work/layer.tar.gz"
layer_digest="sha256:$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)"
layer_size=$(stat -c %s "$work/layer.tar.gz")
mkdir -p "$work/oci/blobs/sha256"
cp "$work/layer.tar.gz" "$work/oci/blobs/sha256/${layer_digest#sha256:}"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' \
  "sha256:$(gzip -dc "$work/layer.tar.gz" | sha256sum | cut -d' ' -f1)" > "$work/config.json"
config_digest="sha256:$(sha256sum "$work/config.json" | cut -d' ' -f1)"
cp "$work/config.json" "$work/oci/blobs/sha256/${config_digest#sha256:}"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
  "$config_digest" "$(stat -c %s "$work/config.json")" "$layer_digest" "$layer_size" > "$work/manifest.json"
manifest_digest="sha256:$(sha256sum "$work/manifest.json" | cut -d' ' -f1)"
cp "$work/manifest.json" "$work/oci/blobs/sha256/${manifest_digest#sha256:}"
echo '{"imageLayoutVersion":"1.0.0"}' > "$work/oci/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
  "$manifest_digest" "$(stat -c %s "$work/manifest.json")" > "$work/oci/index.json"
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:bench" "docker://127.0.0.1:$registry_port/bench/blob:1"

link_port=$(free_port)
"$shared_bin/slowlink" --listen "127.0.0.1:$link_port" --upstream "127.0.0.1:$registry_port" \
  --rtt-ms "$RTT_MS" --mbit "$MBIT" --max-seconds 600 & pids+=($!)
wait_port "$link_port"

"$bench_bin" --reference "127.0.0.1:$link_port/bench/blob" --digest "$layer_digest" --size "$layer_size" \
  --reads "$READS" --read-size "$READ_SIZE" --rtt-ms "$RTT_MS" --mbit "$MBIT"
