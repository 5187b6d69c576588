#!/usr/bin/env bash
# Installs the Debian packages Starling builds against and its tests talk to.
# Idempotent: only runs apt-get when something is missing (or FORCE_UPDATE=1).
set -euo pipefail
pkgs=(
  # build: C libraries Starling links
  pkg-config libfuse3-dev zlib1g-dev libzstd-dev libdeflate-dev libisal-dev libcurl4-openssl-dev
  # build: libcrypto for CVMFS (RIPEMD-160, SHAKE-128, raw RSA of the whitelist)
  libssl-dev
  # run: FUSE mounts and CA store
  fuse3 ca-certificates
  # tests and benchmarks: the real components Starling talks to
  containerd runc docker-registry skopeo stargz-snapshotter zstd busybox-static
  debootstrap openssl apache2-utils jq bc python3 iproute2 util-linux e2fsprogs curl hyperfine binutils
  # CVMFS tests: a stratum-1 as sites run it (nginx) and a site squid in front of it;
  # the squid also caches registry layers (SquidEndToEndTests, bench/squid.sh)
  nginx-light squid attr
  # memory profiles of the daemon (bench/memory.sh PROFILE=massif|heaptrack)
  valgrind heaptrack
)
# kubectl (for `kubectl kustomize deploy/kubernetes`): Debian's kubernetes-client,
# unless some kubectl is installed already (another package owns /usr/bin/kubectl).
command -v kubectl >/dev/null || pkgs+=(kubernetes-client)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${FORCE_UPDATE:-0}" = 1 ] || [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  [ ${#missing[@]} -eq 0 ] || apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The Debian docker-registry package enables a service on port 5000 where systemd
# runs; tests start their own registries on free ports, so that one is left alone.
