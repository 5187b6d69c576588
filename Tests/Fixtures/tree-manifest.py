#!/usr/bin/env python3
"""Prints one line per path under DIR describing everything a layer must
preserve: type, permission bits, owner, mtime, size + sha256 (files), link
target (symlinks), device numbers, xattrs and hard-link groups. Two trees are
"the same layer" when their manifests are equal. Paths given with --exclude
(relative, top level) are left out (landmarks, the TOC file). With
--overlay-whiteouts the times of overlayfs whiteouts (0:0 character
devices, made when a layer is unpacked) are left out too."""
import hashlib, os, stat, sys

def main():
    args = sys.argv[1:]
    excludes = set()
    whiteout_times = True
    while args and args[0] in ("--exclude", "--overlay-whiteouts"):
        if args[0] == "--overlay-whiteouts":
            whiteout_times = False; args = args[1:]
        else:
            excludes.add(args[1]); args = args[2:]
    root = args[0]
    lines = []
    inode_first = {}
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel in excludes:
                continue
            paths.append(rel)
    paths.sort()
    for rel in paths:
        st = os.lstat(os.path.join(root, rel))
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            inode_first.setdefault((st.st_dev, st.st_ino), rel)
    for rel in ["."] + paths:
        full = os.path.join(root, rel)
        st = os.lstat(full)
        m = st.st_mode
        parts = [rel, "mode=%o" % stat.S_IMODE(m), "uid=%d" % st.st_uid, "gid=%d" % st.st_gid]
        if stat.S_ISDIR(m):
            parts.insert(1, "dir")
        elif stat.S_ISREG(m):
            with open(full, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            parts.insert(1, "reg")
            parts += ["size=%d" % st.st_size, "sha256=" + digest]
            first = inode_first.get((st.st_dev, st.st_ino))
            if first is not None:
                parts.append("linkgroup=" + first)
        elif stat.S_ISLNK(m):
            parts.insert(1, "symlink")
            parts.append("target=" + os.readlink(full))
            parts = [p for p in parts if not p.startswith("mode=")]
        elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
            parts.insert(1, "char" if stat.S_ISCHR(m) else "block")
            parts.append("dev=%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
        elif stat.S_ISFIFO(m):
            parts.insert(1, "fifo")
        whiteout = stat.S_ISCHR(m) and st.st_rdev == 0
        if rel != "." and not stat.S_ISLNK(m) and (whiteout_times or not whiteout):
            parts.append("mtime=%d" % int(st.st_mtime))
        try:
            names = sorted(n for n in os.listxattr(full, follow_symlinks=False) if not n.startswith("security.selinux"))
        except OSError:
            names = []
        for n in names:
            parts.append("xattr:%s=%s" % (n, os.getxattr(full, n, follow_symlinks=False).hex()))
        lines.append(" ".join(parts))
    sys.stdout.write("\n".join(lines) + "\n")

main()
