#!/usr/bin/env python3
"""Writes a signed CVMFS repository in the real on-disk format, for Starling's tests.

The layout is what a stratum-1 serves under http://HOST/cvmfs/<fqrn>/:

  .cvmfspublished     manifest (letters C, R, D, S, N, X, B, T, G, A), `--`, the
                      hex hash of the body, then the body's hash signed with the
                      repository key (RSA PKCS#1 v1.5, SHA-1; `openssl dgst -sha1 -sign`)
  .cvmfswhitelist     created, E<expiry>, N<fqrn>, certificate fingerprints, `--`,
                      the hex hash, then a raw RSA private-key operation with
                      PKCS#1 type-1 padding over that hex string (`openssl pkeyutl -sign`
                      without a digest), made with the master key
  data/XX/YYYY...     objects named by the hash of their *compressed* bytes
                      (whole-object zlib), with the hash suffix (none for SHA-1,
                      `-rmd160`, `-shake128`) and a type letter (C catalog, P chunk,
                      X certificate; none for a whole file)

Catalogs are SQLite files (schema 2.5) with nested catalogs, chunked files,
symlinks, hard-link groups, xattrs and special files. With `--layer DIGEST=TAR`
an OCI layer tar is ingested the way DUCC's `cvmfs_server ingest` does it, under
`.layers/<2>/<hex>/layerfs`: whiteouts (`.wh.NAME`, `.wh..wh..opq`) become plain
empty files, hard links become copies, no xattrs are kept; each `.layers/<2>`
directory and each `layerfs` is a nested catalog.

Keys are made (or reused from --keys DIR) with the openssl command line:
master.key/master.pub (the site's master key pair), repo.key/repo.crt (the
repository key and its self-signed certificate).

Usage:
  make-repository.py --out DIR --fqrn NAME [--tree SRC] [--layer sha256:HEX=TAR ...]
      [--keys DIR] [--hash sha1|rmd160|shake128] [--chunk-size N] [--nested /path ...]
      [--ttl S] [--revision N] [--whitelist-expiry YYYYMMDDHH0000] [--whitelist-fqrn NAME]
      [--no-mtimens]
Prints a JSON summary (root catalog hash, certificate hash, objects by path).
"""
import argparse
import datetime
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tarfile
import tempfile
import zlib

SUFFIX = {"sha1": "", "rmd160": "-rmd160", "shake128": "-shake128"}
# catalog flags bits 8-10 hold the algorithm minus one (CVMFS: md5=0, sha1=1, rmd160=2, shake128=3)
ALGO_FLAG = {"sha1": 0, "rmd160": 1, "shake128": 2}

FLAG_DIR, FLAG_NESTED_MOUNT, FLAG_FILE, FLAG_LINK, FLAG_SPECIAL = 1, 2, 4, 8, 16
FLAG_NESTED_ROOT, FLAG_CHUNKED = 32, 64


def digest(algorithm, data):
    if algorithm == "sha1":
        return hashlib.sha1(data).digest()
    if algorithm == "rmd160":
        return hashlib.new("ripemd160", data).digest()
    if algorithm == "shake128":
        return hashlib.shake_128(data).digest(20)
    raise ValueError(algorithm)


def md5pair(path):
    """CVMFS's md5path: MD5 of the path, two little-endian signed 64-bit halves."""
    d = hashlib.md5(path.encode()).digest()
    return (int.from_bytes(d[:8], "little", signed=True), int.from_bytes(d[8:], "little", signed=True))


def run(*args, stdin=None):
    return subprocess.run(args, input=stdin, check=True, capture_output=True).stdout


class Node:
    """One entry of the repository tree (paths relative to the repository root)."""

    def __init__(self, kind, mode=0o755, uid=0, gid=0, mtime=1700000000, mtimens=0, data=b"", target="",
                 rdev=0, xattrs=None, link_group=None):
        self.kind, self.mode, self.uid, self.gid = kind, mode, uid, gid
        self.mtime, self.mtimens, self.data, self.target = mtime, mtimens, data, target
        self.rdev, self.xattrs, self.link_group = rdev, xattrs or {}, link_group
        self.children = {}


class Repository:
    def __init__(self, out, fqrn, algorithm, chunk_size, mtimens):
        self.out, self.fqrn, self.algorithm = out, fqrn, algorithm
        self.chunk_size, self.with_mtimens = chunk_size, mtimens
        self.root = Node("dir")
        self.nested = set()
        self.objects = {}
        os.makedirs(os.path.join(out, "data"), exist_ok=True)

    # -- objects ---------------------------------------------------------
    def put_object(self, plain, type_letter=""):
        compressed = zlib.compress(plain)
        raw = digest(self.algorithm, compressed)
        hexname = raw.hex()
        name = "data/%s/%s%s%s" % (hexname[:2], hexname[2:], SUFFIX[self.algorithm], type_letter)
        path = os.path.join(self.out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(compressed)
        self.objects[name] = len(compressed)
        return raw, hexname + SUFFIX[self.algorithm], len(compressed)

    # -- tree ------------------------------------------------------------
    def node(self, path, create_dirs=True):
        node = self.root
        for part in [p for p in path.split("/") if p]:
            if part not in node.children:
                if not create_dirs:
                    return None
                node.children[part] = Node("dir")
            node = node.children[part]
        return node

    def add(self, path, node):
        parent, _, name = path.strip("/").rpartition("/")
        self.node(parent).children[name] = node

    def add_directory_tree(self, source, prefix=""):
        """Adds a directory from disk: files, dirs, symlinks, devices, fifos, user xattrs, hard links."""
        groups = {}
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            rel = os.path.relpath(dirpath, source)
            rel = "" if rel == "." else rel
            st = os.lstat(dirpath)
            target = self.node(prefix + "/" + rel if rel else prefix)
            target.mode, target.uid, target.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
            target.mtime, target.mtimens = int(st.st_mtime), st.st_mtime_ns % 1_000_000_000
            target.xattrs = read_xattrs(dirpath)
            for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                common = dict(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, mtime=int(st.st_mtime),
                              mtimens=st.st_mtime_ns % 1_000_000_000)
                if stat.S_ISLNK(st.st_mode):
                    node = Node("symlink", target=os.readlink(full), **common)
                elif stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as f:
                        node = Node("file", data=f.read(), xattrs=read_xattrs(full), **common)
                    if st.st_nlink > 1:
                        node.link_group = groups.setdefault(st.st_ino, len(groups) + 1)
                elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode) \
                        or stat.S_ISSOCK(st.st_mode):
                    common["mode"] = st.st_mode  # keep the type bits: they tell the kind of special file
                    node = Node("special", rdev=st.st_rdev, **common)
                else:
                    continue
                self.add((prefix + "/" + rel + "/" + name) if rel else (prefix + "/" + name), node)
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]

    def ingest_layer(self, layer_digest, tar_path):
        """DUCC's ingest of one layer tar: plain files, whiteouts included, hard links as copies."""
        hexdigest = layer_digest.split(":", 1)[1]
        base = "/.layers/%s/%s" % (hexdigest[:2], hexdigest)
        self.node(base + "/layerfs")
        self.nested.add("/.layers/%s" % hexdigest[:2])
        self.nested.add(base + "/layerfs")
        contents = {}
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                name = tar_name(member.name)
                if not name:
                    continue
                path = base + "/layerfs/" + name
                common = dict(mode=member.mode & 0o7777, uid=member.uid, gid=member.gid, mtime=int(member.mtime))
                if member.isdir():
                    node = self.node(path)
                    node.mode, node.uid, node.gid, node.mtime = common["mode"], member.uid, member.gid, common["mtime"]
                    continue
                if member.isreg():
                    data = tar.extractfile(member).read()
                    contents[name] = (data, common)
                    self.add(path, Node("file", data=data, **common))
                elif member.islnk():
                    data, linked = contents[tar_name(member.linkname)]
                    self.add(path, Node("file", data=data, **linked))
                elif member.issym():
                    self.add(path, Node("symlink", target=member.linkname, **common))
                elif member.ischr() or member.isblk() or member.isfifo():
                    kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
                    common["mode"] |= kind
                    self.add(path, Node("special", rdev=os.makedev(member.devmajor, member.devminor), **common))
        meta = {"diff-digest": "", "compressed-diff-digest": layer_digest}
        self.add(base + "/.metadata/layers.json", Node("file", mode=0o644, data=json.dumps(meta).encode()))

    # -- catalogs --------------------------------------------------------
    def write_catalogs(self, revision):
        return self._write_catalog("", self.root, revision)

    def _write_catalog(self, root_path, root_node, revision):
        """Writes the catalog rooted at root_path; returns (raw hash, hex with suffix, compressed size)."""
        fd, db_path = tempfile.mkstemp(suffix=".sqlite")
        os.close(fd)
        db = sqlite3.connect(db_path)
        mtimens_col = "mtimens INTEGER, " if self.with_mtimens else ""
        db.executescript("""
            CREATE TABLE catalog (md5path_1 INTEGER, md5path_2 INTEGER, parent_1 INTEGER, parent_2 INTEGER,
              hardlinks INTEGER, hash BLOB, size INTEGER, mode INTEGER, mtime INTEGER, %s flags INTEGER,
              name TEXT, symlink TEXT, uid INTEGER, gid INTEGER, xattr BLOB,
              CONSTRAINT pk_catalog PRIMARY KEY (md5path_1, md5path_2));
            CREATE INDEX idx_catalog_parent ON catalog (parent_1, parent_2);
            CREATE TABLE chunks (md5path_1 INTEGER, md5path_2 INTEGER, offset INTEGER, size INTEGER, hash BLOB,
              CONSTRAINT pk_chunks PRIMARY KEY (md5path_1, md5path_2, offset, size));
            CREATE TABLE nested_catalogs (path TEXT, sha1 TEXT, size INTEGER, CONSTRAINT pk_nested_catalogs PRIMARY KEY (path));
            CREATE TABLE bind_mountpoints (path TEXT, sha1 TEXT, size INTEGER, CONSTRAINT pk_bind_mountpoints PRIMARY KEY (path));
            CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key));
            CREATE TABLE statistics (counter TEXT, value INTEGER, CONSTRAINT pk_statistics PRIMARY KEY (counter));
        """ % mtimens_col)
        props = {"revision": str(revision), "schema": "2.5", "schema_revision": "7" if self.with_mtimens else "3",
                 "root_prefix": root_path or "/", "last_modified": str(1700000000)}
        db.executemany("INSERT INTO properties VALUES (?, ?)", props.items())
        counts = {}

        def insert(path, parent_path, name, node, extra_flags=0):
            p1, p2 = md5pair(path)
            q1, q2 = md5pair(parent_path) if path != "" else (0, 0)
            flags, size, hashval, symlink, hardlinks = extra_flags, 0, None, "", 1
            mode = node.mode
            if node.kind == "dir":
                flags |= FLAG_DIR
                mode |= stat.S_IFDIR
                size = 4096
                hardlinks = 2 + sum(1 for c in node.children.values() if c.kind == "dir")
            elif node.kind == "file":
                flags |= FLAG_FILE | (ALGO_FLAG[self.algorithm] << 8)
                mode |= stat.S_IFREG
                size = len(node.data)
                if len(node.data) > self.chunk_size:
                    flags |= FLAG_CHUNKED
                    hashval = digest(self.algorithm, zlib.compress(node.data))  # the bulk hash; no bulk object stored
                    for offset in range(0, len(node.data), self.chunk_size):
                        piece = node.data[offset:offset + self.chunk_size]
                        raw, _, _ = self.put_object(piece, "P")
                        db.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, ?)", (p1, p2, offset, len(piece), raw))
                else:
                    hashval, _, _ = self.put_object(node.data)
                if node.link_group is not None:
                    hardlinks = (node.link_group << 32) | node.link_count
            elif node.kind == "symlink":
                flags |= FLAG_LINK
                mode |= stat.S_IFLNK
                symlink = node.target
                size = len(node.target.encode())
            elif node.kind == "special":
                flags |= FLAG_SPECIAL
                size = node.rdev
            counts[node.kind] = counts.get(node.kind, 0) + 1
            xattr = encode_xattrs(node.xattrs) if node.xattrs else None
            columns = [p1, p2, q1, q2, hardlinks, hashval, size, mode, node.mtime]
            if self.with_mtimens:
                columns.append(node.mtimens)
            columns += [flags, name, symlink, node.uid, node.gid, xattr]
            db.execute("INSERT INTO catalog VALUES (%s)" % ",".join("?" * len(columns)), columns)

        def walk(path, node):
            # hard-link groups: count members per group inside this directory (CVMFS keeps groups per directory)
            tally = {}
            for child in node.children.values():
                if child.link_group is not None:
                    tally[child.link_group] = tally.get(child.link_group, 0) + 1
            for child in node.children.values():
                if child.link_group is not None:
                    child.link_count = tally[child.link_group]
            for name in sorted(node.children):
                child = node.children[name]
                child_path = path + "/" + name
                if child_path in self.nested:
                    raw, hexname, size = self._write_catalog(child_path, child, revision)
                    insert(child_path, path, name, child, FLAG_NESTED_MOUNT)
                    db.execute("INSERT INTO nested_catalogs VALUES (?, ?, ?)", (child_path, hexname, size))
                    continue
                insert(child_path, path, name, child)
                if child.kind == "dir":
                    walk(child_path, child)

        parent_path = root_path.rpartition("/")[0]
        insert(root_path, parent_path, root_path.rpartition("/")[2], root_node,
               FLAG_NESTED_ROOT if root_path else 0)
        walk(root_path, root_node)
        for kind, n in counts.items():
            db.execute("INSERT INTO statistics VALUES (?, ?)", ("self_" + kind, n))
        db.commit()
        db.close()
        with open(db_path, "rb") as f:
            plain = f.read()
        os.unlink(db_path)
        return self.put_object(plain, "C")


def tar_name(name):
    """A tar member name relative to the layer root ("./etc/x" and "etc/x" alike)."""
    while name.startswith("./"):
        name = name[2:]
    name = name.lstrip("/").rstrip("/")
    return "" if name == "." else name


def read_xattrs(path):
    try:
        return {k: os.getxattr(path, k, follow_symlinks=False) for k in os.listxattr(path, follow_symlinks=False)
                if k.startswith("user.")}
    except OSError:
        return {}


def encode_xattrs(xattrs):
    """CVMFS's XattrList serialisation: version 1, count, then (key length, value length, key, value)."""
    out = bytes([1, len(xattrs)])
    for key, value in sorted(xattrs.items()):
        k = key.encode()
        out += bytes([len(k), len(value)]) + k + value
    return out


def ensure_keys(keydir, fqrn):
    os.makedirs(keydir, exist_ok=True)
    master, repo, cert = (os.path.join(keydir, n) for n in ("master.key", "repo.key", "repo.crt"))
    if not os.path.exists(master):
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", master)
        run("openssl", "pkey", "-in", master, "-pubout", "-out", os.path.join(keydir, "master.pub"))
    if not os.path.exists(repo):
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", repo)
        run("openssl", "req", "-new", "-x509", "-key", repo, "-out", cert, "-days", "3650", "-subj", "/CN=" + fqrn)
    return master, repo, cert


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--fqrn", required=True)
    ap.add_argument("--tree", action="append", default=[], help="SRC or SRC=/repo/path")
    ap.add_argument("--layer", action="append", default=[], help="sha256:HEX=layer.tar")
    ap.add_argument("--keys", required=True)
    ap.add_argument("--hash", default="sha1", choices=sorted(SUFFIX))
    ap.add_argument("--chunk-size", type=int, default=4 << 20)
    ap.add_argument("--nested", action="append", default=[])
    ap.add_argument("--ttl", type=int, default=240)
    ap.add_argument("--revision", type=int, default=1)
    ap.add_argument("--whitelist-expiry", default=None)
    ap.add_argument("--whitelist-fqrn", default=None)
    ap.add_argument("--no-mtimens", action="store_true")
    args = ap.parse_args()

    repo = Repository(args.out, args.fqrn, args.hash, args.chunk_size, not args.no_mtimens)
    for spec in args.tree:
        source, _, prefix = spec.partition("=")
        repo.add_directory_tree(source, prefix.rstrip("/"))
    for spec in args.layer:
        layer_digest, _, tar_path = spec.partition("=")
        repo.ingest_layer(layer_digest, tar_path)
    repo.nested.update(p.rstrip("/") for p in args.nested)
    root_raw, root_hex, root_size = repo.write_catalogs(args.revision)

    master, repo_key, cert = ensure_keys(args.keys, args.fqrn)
    with open(cert, "rb") as f:
        cert_pem = f.read()
    _, cert_hex, _ = repo.put_object(cert_pem, "X")
    der = run("openssl", "x509", "-in", cert, "-outform", "DER")
    fingerprint = ":".join("%02X" % b for b in hashlib.sha1(der).digest())

    now = datetime.datetime.now(datetime.timezone.utc)
    body = "".join("%s%s\n" % kv for kv in [
        ("C", root_hex), ("B", root_size), ("R", "d41d8cd98f00b204e9800998ecf8427e"), ("D", args.ttl),
        ("S", args.revision), ("G", "no"), ("A", "no"), ("N", args.fqrn), ("X", cert_hex),
        ("T", int(now.timestamp()))]).encode()
    body_hash = digest(args.hash, body).hex() + SUFFIX[args.hash]
    signature = run("openssl", "dgst", "-sha1", "-sign", repo_key, stdin=body_hash.encode())
    with open(os.path.join(args.out, ".cvmfspublished"), "wb") as f:
        f.write(body + b"--\n" + body_hash.encode() + b"\n" + signature)

    expiry = args.whitelist_expiry or (now + datetime.timedelta(days=30)).strftime("%Y%m%d%H0000")
    wl_body = ("%s\nE%s\nN%s\n%s # test certificate\n" % (
        now.strftime("%Y%m%d%H%M%S"), expiry, args.whitelist_fqrn or args.fqrn, fingerprint)).encode()
    wl_hash = hashlib.sha1(wl_body).hexdigest()
    wl_sig = run("openssl", "pkeyutl", "-sign", "-inkey", master, "-pkeyopt", "rsa_padding_mode:pkcs1",
                 stdin=wl_hash.encode())
    with open(os.path.join(args.out, ".cvmfswhitelist"), "wb") as f:
        f.write(wl_body + b"--\n" + wl_hash.encode() + b"\n" + wl_sig)

    json.dump({"root_catalog": root_hex, "certificate": cert_hex, "fingerprint": fingerprint,
               "master_public_key": os.path.join(args.keys, "master.pub"), "objects": repo.objects},
              sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
