#!/usr/bin/env python3
"""Writes a layer tar with N entries shaped like a real root filesystem:
10% directories, 80% small regular files (1..4000 bytes), 10% symlinks, in
nested directories. Used to measure TOC parse + index time and memory."""
import io, random, sys, tarfile

n, out = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(42)
payload = bytes(rnd.getrandbits(8) for _ in range(4096))
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
    dirs = ["usr"]
    d = tarfile.TarInfo("usr"); d.type = tarfile.DIRTYPE; d.mode = 0o755; d.mtime = 1700000000
    tar.addfile(d)
    for i in range(1, n):
        kind = i % 10
        parent = dirs[rnd.randrange(len(dirs))]
        if kind == 0:
            name = "%s/dir%06d" % (parent, i)
            t = tarfile.TarInfo(name); t.type = tarfile.DIRTYPE; t.mode = 0o755; t.mtime = 1700000000
            tar.addfile(t); dirs.append(name)
        elif kind == 9:
            t = tarfile.TarInfo("%s/link%06d.so" % (parent, i)); t.type = tarfile.SYMTYPE
            t.linkname = "../lib/x86_64-linux-gnu/libsomething.so.%d" % i; t.mtime = 1700000000
            tar.addfile(t)
        else:
            size = rnd.randrange(1, 4000)
            t = tarfile.TarInfo("%s/file%06d.txt" % (parent, i)); t.size = size; t.mode = 0o644
            t.mtime = 1700000000; t.uid = 0; t.gid = 0
            tar.addfile(t, io.BytesIO(payload[:size]))
