#!/usr/bin/env python3
"""Builds the small source tree every format test and fixture starts from:
regular files, an empty file, a file larger than 4 MiB (so it is chunked,
highly compressible), a symlink, a hard link, directories with unusual modes,
setuid and sticky bits, a file with a user xattr, a whiteout and an opaque
marker, a fifo, a character device, and owners other than root. All mtimes
are fixed so the tree (and its tar) is the same every time."""
import os, sys

root = sys.argv[1]
os.makedirs(root)
MTIME = 1700000000

def write(rel, data, mode=0o644, uid=0, gid=0):
    p = os.path.join(root, rel)
    with open(p, "wb") as f:
        f.write(data)
    os.chown(p, uid, gid)
    os.chmod(p, mode)

def mkdir(rel, mode=0o755, uid=0, gid=0):
    p = os.path.join(root, rel)
    os.mkdir(p)
    os.chown(p, uid, gid)
    os.chmod(p, mode)

mkdir("etc")
write("etc/hostname", b"starling\n")
write("etc/os-release", b"NAME=Starling test tree\nID=starling\n" * 40)
write("etc/empty", b"")
mkdir("bin")
write("bin/tool", bytes(range(256)) * 64, mode=0o4755)          # setuid
mkdir("usr"); mkdir("usr/lib")
# > 4 MiB so the default chunk size splits it; compressible but not constant.
big = b"".join((b"block %06d " % i).ljust(4096, b"x") for i in range(1200))
write("usr/lib/big.bin", big, mode=0o640, uid=1000, gid=1000)
os.symlink("../lib/big.bin", os.path.join(root, "usr/lib/big-link"))
os.lchown(os.path.join(root, "usr/lib/big-link"), 1000, 1000)
os.link(os.path.join(root, "etc/hostname"), os.path.join(root, "etc/hostname.hardlink"))
mkdir("home", 0o755); mkdir("home/user", 0o700, uid=1000, gid=100)
write("home/user/notes.txt", b"private notes\n", mode=0o600, uid=1000, gid=100)
mkdir("tmp", 0o1777)
write("etc/with-xattr", b"has an xattr\n")
os.setxattr(os.path.join(root, "etc/with-xattr"), "user.starling", b"value\x00\x01bytes")
# OCI whiteouts: delete "x" from the layer below, and make "opaque" opaque.
write(".wh.x", b"")
mkdir("opaque"); write("opaque/.wh..wh..opq", b""); write("opaque/kept", b"kept\n")
os.mkfifo(os.path.join(root, "tmp/fifo"), 0o644)
os.mknod(os.path.join(root, "etc/null"), 0o666 | 0o020000, os.makedev(1, 3))
for dirpath, dirnames, filenames in os.walk(root, topdown=False):
    for name in dirnames + filenames:
        os.utime(os.path.join(dirpath, name), (MTIME, MTIME), follow_symlinks=False)
os.utime(root, (MTIME, MTIME))
