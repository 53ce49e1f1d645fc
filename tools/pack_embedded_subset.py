#!/usr/bin/env python3
"""Pack a balanced CIFAR-10 subset (original JPEG bytes) into the file embedded by agnas.

Usage (from the workspace root):
    python3 tools/pack_embedded_subset.py /work/shared/data/cifar10/cifar10-train-jpg.tar.gz \
        crates/agnas/data/cifar10-subset.pack.gz [--per-class 1000] [--seed 0]

The archive holds <prefix>/<class>/<file>.jpg. Classes are sorted by name and numbered from 0 (airplane=0
... truck=9 for CIFAR-10). From each class the images whose SHA-256 of "<seed>:<class>/<file>" sorts lowest
are kept: the choice is a seeded shuffle that depends on nothing but the names, so it is the same on every
Python version. The pack lists them by class, then by file name. The JPEG bytes are copied, not re-encoded.

Format (gzip of the following; all integers little-endian; read by crates/agnas/src/data/embedded.rs):
    magic   8 bytes  b"AGNASPK\\0"
    version u32      1
    classes u32, then per class: name length u32, UTF-8 name
    images  u32, then per image: label u32, length u32, JPEG bytes

Only the Python standard library is used, and the output is deterministic.
"""

import argparse
import gzip
import hashlib
import struct
import sys
import tarfile

MAGIC = b"AGNASPK\0"
VERSION = 1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def read_archive(path):
    """{class: {file name: bytes}} of the image members of `path`, which must share one prefix."""
    classes = {}
    prefixes = set()
    with tarfile.open(path) as archive:
        for member in archive:
            if not member.isfile() or not member.name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if len(parts) < 2:
                sys.exit(f"{path}: member {member.name} is not inside a class folder")
            prefixes.add("/".join(parts[:-2]))
            data = archive.extractfile(member).read()
            classes.setdefault(parts[-2], {})[parts[-1]] = data
    if len(prefixes) > 1:
        sys.exit(f"{path}: images lie under several folders ({sorted(prefixes)}); expected one")
    return classes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive")
    parser.add_argument("output")
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    classes = read_archive(args.archive)
    names = sorted(classes)
    out = bytearray(MAGIC)
    out += struct.pack("<II", VERSION, len(names))
    for name in names:
        encoded = name.encode("utf-8")
        out += struct.pack("<I", len(encoded)) + encoded
    chosen = []
    for label, name in enumerate(names):
        files = classes[name]
        if len(files) < args.per_class:
            sys.exit(f"class {name} has {len(files)} images, fewer than --per-class {args.per_class}")
        rank = sorted(files, key=lambda f: hashlib.sha256(f"{args.seed}:{name}/{f}".encode()).digest())
        chosen += [(label, files[f]) for f in sorted(rank[: args.per_class])]
    out += struct.pack("<I", len(chosen))
    for label, data in chosen:
        out += struct.pack("<II", label, len(data)) + data
    # gzip shares the JPEG headers (identical quantisation tables) across images: 9.3 MB become 3.1 MB.
    # mtime=0 and no file name keep the output byte-for-byte reproducible.
    with open(args.output, "wb") as raw, gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as f:
        f.write(out)
    print(f"{args.output}: {len(names)} classes, {len(chosen)} images, {len(out)} bytes before gzip")


if __name__ == "__main__":
    main()
