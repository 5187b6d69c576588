#!/usr/bin/env bash
# Regenerates the reference fixtures: the standard source tree
# (make-source-tree.py) as a layer tar, converted by the REFERENCE converter
# (ctr-remote from Debian's stargz-snapshotter package) to eStargz and to
# zstd:chunked. Needs root, containerd, ctr-remote, GNU tar, python3, jq.
#
# Outputs (committed):
#   source.tar.gz              the layer the fixtures were made from
#   reference-estargz.blob     ctr-remote images convert --estargz --oci
#   reference-estargz.json     its layer descriptor (digest, size, annotations)
#   reference-zstdchunked.blob ctr-remote images convert --zstdchunked --oci
#   reference-zstdchunked.json
#
# A private containerd (own root, state and socket in a temp dir) does the
# conversion and is stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/starling-fixtures.XXXXXX)
cpid=
cleanup() {
  if [ -n "$cpid" ]; then kill "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true; fi
  umount -R "$work/root" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

sock="$work/containerd.sock"
cat > "$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = "$work/debug.sock"
[metrics]
  address = ""
TOML
containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
cpid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { cat "$work/containerd.log" >&2; exit 1; }
ctr() { ctr-remote --address "$sock" --namespace fixtures "$@"; }

python3 "$here/make-source-tree.py" "$work/tree"
tar --numeric-owner --xattrs --xattrs-include='*' --sort=name -C "$work/tree" -cf "$work/layer.tar" .
gzip -n -6 -c "$work/layer.tar" > "$work/layer.tar.gz"
python3 "$here/oci-layout.py" "$work/layer.tar.gz" "$work/layer.tar" "$work/layout"
tar -C "$work/layout" -cf "$work/image.tar" .
ctr images import --no-unpack --base-name fixture/src "$work/image.tar" >/dev/null
src=$(ctr images ls -q | grep '^fixture/src' | head -1)

# The source layer, as committed: the gzip layer the conversions started from.
manifest_of() { ctr content get "$(ctr images ls | awk -v r="$1" '$1==r {print $3}')"; }
src_layer=$(manifest_of "$src" | jq -r '.layers[0].digest')
ctr content get "$src_layer" > "$here/source.tar.gz"

export_layer() { # ref, output name
  local manifest layer
  manifest=$(manifest_of "$1")
  layer=$(jq -c '.layers[0]' <<<"$manifest")
  ctr content get "$(jq -r .digest <<<"$layer")" > "$here/$2.blob"
  jq . <<<"$layer" > "$here/$2.json"
}
ctr images convert --oci --estargz "$src" fixture/estargz:1 >/dev/null
export_layer fixture/estargz:1 reference-estargz
ctr images convert --oci --zstdchunked "$src" fixture/zstdchunked:1 >/dev/null
export_layer fixture/zstdchunked:1 reference-zstdchunked
ls -l "$here"/*.blob "$here"/source.tar.gz
