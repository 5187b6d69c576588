#!/usr/bin/env python3
"""oci-layout.py LAYER_TAR_GZ LAYER_TAR OUT_DIR: a one-layer OCI image layout
(tag "src") around an existing gzip layer, so containerd can import it and
the reference converter can convert it."""
import hashlib, json, os, sys

gz, tar, out = sys.argv[1:4]
os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)

def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

with open(gz, "rb") as f:
    layer = put(f.read())
h = hashlib.sha256()
with open(tar, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
config = put(json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + h.hexdigest()]}}).encode())
manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **config),
    "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **layer)]}).encode())
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json",
               annotations={"org.opencontainers.image.ref.name": "src"}, **manifest)]}, f)
