#!/bin/sh
# Installs Starling on a node as its systemd service, from inside the
# privileged DaemonSet pod (deploy/kubernetes) or by hand: every path is
# under HOST_ROOT (the host's / mounted into the pod), so a test can run it
# against a scratch directory.
#
#   HOST_ROOT=/host node-install.sh [--once]
#
# Writes only what differs from what the node has, each file renamed into
# place (never half written):
#   /usr/local/bin/starling               the binary                  (STARLING_BINARY)
#   /etc/systemd/system/starling.service  the unit                    (STARLING_UNIT)
#   /etc/starling/config.toml             Starling's config, 0600     (STARLING_CONFIG)
#   containerd: CONTAINERD_FLAVOR=containerd (default) writes the drop-in
#     /etc/containerd/conf.d/starling.toml (the proxy plugin), adds it to
#     `imports` of /etc/containerd/config.toml and sets the CRI plugin's
#     snapshotter there (version 2 configs: containerd 1.6 and 1.7);
#   CONTAINERD_FLAVOR=k3s writes k3s' config.toml.tmpl (its generated
#     config.toml with the snapshotter set to starling, snapshot annotations
#     on, and the proxy plugin added).
# Then, through SYSTEMCTL (default: the host's systemctl via nsenter into
# PID 1): daemon-reload and enable; start or restart Starling when its files
# changed (running containers keep their lazy files: the unit keeps the
# FUSE connections in systemd's store); restart containerd (k3s: the k3s
# unit) only when its configuration changed. Prints what it changed. With
# --once it exits; else it then waits (the DaemonSet pod stays up, and is
# how an upgrade is rolled out).
set -eu
HOST_ROOT=${HOST_ROOT:-/host}
HOST_ROOT=${HOST_ROOT%/}
STARLING_BINARY=${STARLING_BINARY:-/opt/starling/starling}
STARLING_UNIT=${STARLING_UNIT:-/opt/starling/starling.service}
STARLING_CONFIG=${STARLING_CONFIG:-/etc/starling-config/config.toml}
CONTAINERD_FLAVOR=${CONTAINERD_FLAVOR:-containerd}
STARLING_SOCKET=${STARLING_SOCKET:-/run/starling/starling.sock}
SYSTEMCTL=${SYSTEMCTL:-nsenter --target 1 --mount --uts --ipc --net --pid -- systemctl}
case $CONTAINERD_FLAVOR in
  containerd)
    CONTAINERD_CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
    CONTAINERD_DROPIN=${CONTAINERD_DROPIN:-/etc/containerd/conf.d/starling.toml}
    CONTAINERD_UNIT=${CONTAINERD_UNIT:-containerd.service} ;;
  k3s)
    K3S_DIR=${K3S_DIR:-/var/lib/rancher/k3s/agent/etc/containerd}
    CONTAINERD_UNIT=${CONTAINERD_UNIT:-k3s.service} ;;
  *) echo "node-install: CONTAINERD_FLAVOR must be containerd or k3s, not $CONTAINERD_FLAVOR" >&2; exit 2 ;;
esac
changed_starling=0
changed_containerd=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# place SOURCE_FILE HOST_PATH MODE: copies when the content or mode differs.
place() {
  target=$HOST_ROOT$2
  if [ -f "$target" ] && cmp -s "$1" "$target" && [ "$(stat -c %a "$target")" = "$3" ]; then return 1; fi
  mkdir -p "$(dirname "$target")"
  cp "$1" "$target.starling-new"
  chmod "$3" "$target.starling-new"
  mv -f "$target.starling-new" "$target"
  echo "node-install: wrote $2"
}

[ -f "$STARLING_BINARY" ] || { echo "node-install: no binary at $STARLING_BINARY" >&2; exit 1; }
[ -f "$STARLING_UNIT" ] || { echo "node-install: no unit at $STARLING_UNIT" >&2; exit 1; }
# The binary runs with the node's shared libraries (README, "Runtime
# needs"). It is run there (`--version`, chrooted into HOST_ROOT) before it
# replaces anything, so a node that lacks one (libisal2, say) keeps its
# Starling, its unit and its containerd configuration as they were, instead
# of a containerd pointed at a daemon that cannot start.
binary=/usr/local/bin/starling
if [ -f "$HOST_ROOT$binary" ] && cmp -s "$STARLING_BINARY" "$HOST_ROOT$binary"; then
  candidate=$binary
else
  candidate=$binary.starling-check
  mkdir -p "$HOST_ROOT/usr/local/bin"
  cp "$STARLING_BINARY" "$HOST_ROOT$candidate"
  chmod 755 "$HOST_ROOT$candidate"
fi
if ! chroot "${HOST_ROOT:-/}" "$candidate" --version > "$scratch/version" 2>&1; then
  [ "$candidate" = "$binary" ] || rm -f "$HOST_ROOT$candidate"
  echo "node-install: the starling binary does not run on this node, nothing changed:" >&2
  sed 's/^/  /' "$scratch/version" >&2
  echo "node-install: install the runtime packages the README lists (Debian 12: fuse3 libcurl4 libsqlite3-0 libssl3 zlib1g libzstd1 libdeflate0 libisal2 libstdc++6)" >&2
  exit 1
fi
if [ "$candidate" = "$binary" ]; then
  place "$STARLING_BINARY" $binary 755 && changed_starling=1   # the mode, if it differs
else
  mv -f "$HOST_ROOT$candidate" "$HOST_ROOT$binary"
  echo "node-install: wrote $binary"
  changed_starling=1
fi
place "$STARLING_UNIT" /etc/systemd/system/starling.service 644 && changed_starling=1
if [ -f "$STARLING_CONFIG" ]; then
  # 0600: a [registry.host] section may hold a password.
  place "$STARLING_CONFIG" /etc/starling/config.toml 600 && changed_starling=1
fi

proxy_plugin() {
  cat <<EOT
[proxy_plugins.starling]
  type = "snapshot"
  address = "$STARLING_SOCKET"
EOT
}

# cri_settings IN OUT: IN with the CRI plugin's snapshotter set to starling
# and snapshot annotations on (the keys set in place in
# [plugins."io.containerd.grpc.v1.cri".containerd], added to it, or the
# table added), and any [proxy_plugins.starling] table taken out. They are
# set in the main file: containerd 1.6/1.7 merges an imported file's
# plugin table over the main file's whole, which would drop the node's
# other CRI settings (sandbox image, CNI directories).
cri_settings() {
  awk '
    function finish() {
      if (cri) {
        if (!snap) print indent "  snapshotter = \"starling\""
        if (!annot) print indent "  disable_snapshot_annotations = false"
        cri = 0
      }
    }
    /^[[:space:]]*\[/ {
      finish()
      header = $0; gsub(/[[:space:]]/, "", header)
      skip = (header == "[proxy_plugins.starling]")
      if (header == "[plugins.\"io.containerd.grpc.v1.cri\".containerd]") {
        cri = 1; seen = 1; indent = $0; sub(/\[.*/, "", indent)
      }
    }
    skip { next }
    cri && /^[[:space:]]*snapshotter[[:space:]]*=/ { sub(/=.*/, "= \"starling\""); snap = 1 }
    cri && /^[[:space:]]*disable_snapshot_annotations[[:space:]]*=/ { sub(/=.*/, "= false"); annot = 1 }
    { print }
    END {
      finish()
      if (!seen) {
        print ""
        print "# Kubernetes (CRI): pods use Starling, and containerd passes the image labels it needs."
        print "[plugins.\"io.containerd.grpc.v1.cri\".containerd]"
        print "  snapshotter = \"starling\""
        print "  disable_snapshot_annotations = false"
      }
    }
  ' "$1" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' > "$2"
}

require_version2() {
  grep -q '^[[:space:]]*version[[:space:]]*=[[:space:]]*2' "$1" || {
    echo "node-install: $2 is not a version 2 containerd config (containerd 1.6/1.7); set Starling up by hand (README)" >&2; exit 1; }
}

if [ "$CONTAINERD_FLAVOR" = containerd ]; then
  { echo "# Written by Starling's node-install.sh: Starling as containerd's proxy snapshotter."
    echo "version = 2"
    echo
    proxy_plugin
  } > "$scratch/dropin"
  place "$scratch/dropin" "$CONTAINERD_DROPIN" 644 && changed_containerd=1
  main=$HOST_ROOT$CONTAINERD_CONFIG
  if [ -f "$main" ]; then cp "$main" "$scratch/main.in"; else printf 'version = 2\n' > "$scratch/main.in"; fi
  require_version2 "$scratch/main.in" "$CONTAINERD_CONFIG"
  cri_settings "$scratch/main.in" "$scratch/main"
  if ! grep -qF "\"$CONTAINERD_DROPIN\"" "$scratch/main"; then
    if grep -q '^imports[[:space:]]*=' "$scratch/main"; then
      # One-line imports list: add ours at its end.
      sed -i "s|^\(imports[[:space:]]*=[[:space:]]*\[.*\)\]|\1, \"$CONTAINERD_DROPIN\"]|; s|\[, |[|" "$scratch/main"
    else
      # A top-level key: right after `version`.
      awk -v line="imports = [\"$CONTAINERD_DROPIN\"]" \
        '{ print } !done && /^[[:space:]]*version[[:space:]]*=/ { print line; done = 1 }' \
        "$scratch/main" > "$scratch/main.new" && mv "$scratch/main.new" "$scratch/main"
    fi
  fi
  mode=644; [ -f "$main" ] && mode=$(stat -c %a "$main")
  place "$scratch/main" "$CONTAINERD_CONFIG" "$mode" && changed_containerd=1
else
  generated=$HOST_ROOT$K3S_DIR/config.toml
  [ -f "$generated" ] || { echo "node-install: no k3s containerd config at $K3S_DIR/config.toml (is k3s installed and started once?)" >&2; exit 1; }
  require_version2 "$generated" "$K3S_DIR/config.toml"
  # From k3s' own rendering (which, once our template is in place, is ours).
  cri_settings "$generated" "$scratch/tmpl"
  grep -q '^# Written by Starling' "$scratch/tmpl" || sed -i '1i # Written by Starling'"'"'s node-install.sh from k3s'"'"'s generated config.toml.' "$scratch/tmpl"
  { echo; proxy_plugin; } >> "$scratch/tmpl"
  place "$scratch/tmpl" "$K3S_DIR/config.toml.tmpl" 644 && changed_containerd=1
fi

$SYSTEMCTL daemon-reload
$SYSTEMCTL enable starling.service
if [ $changed_starling = 1 ]; then
  $SYSTEMCTL restart starling.service
else
  $SYSTEMCTL start starling.service
fi
if [ $changed_containerd = 1 ]; then
  $SYSTEMCTL restart "$CONTAINERD_UNIT"
fi
echo "node-install: starling files $( [ $changed_starling = 1 ] && echo changed || echo unchanged ), containerd configuration $( [ $changed_containerd = 1 ] && echo changed || echo unchanged )"
[ "${1:-}" = --once ] && exit 0
# The pod stays: deleting it leaves Starling running on the node.
exec sleep infinity
