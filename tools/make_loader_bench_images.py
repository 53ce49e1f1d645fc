#!/usr/bin/env python3
"""A folder of ImageNet-sized JPEGs for `agnas bench loader` and tools/bench_loader.py.

Takes the first --per-class images of each class of the provided CIFAR-10 training JPEGs, upsamples them
(bicubic) to the sizes of typical ImageNet photographs (500×375, 375×500, 500×333, 400×300 in turn), adds a little
Gaussian noise so that the JPEGs carry about as much detail as photographs do (a smooth upsampled image decodes
faster than a real one), and writes them at quality 90 as <out>/<class>/<name>.jpg.

    ~/.cache/agnas/torch-2.11.0/bin/python tools/make_loader_bench_images.py \\
        --archive ../shared/data/cifar10/cifar10-train-jpg.tar.gz --out target/bench-images
"""

import argparse
import io
import os
import tarfile

import numpy as np
from PIL import Image

SIZES = [(500, 375), (375, 500), (500, 333), (400, 300)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", required=True, help="cifar10-train-jpg.tar.gz")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-class", type=int, default=64)
    ap.add_argument("--noise", type=float, default=12.0, help="standard deviation of the added noise, in u8 steps")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    taken = {}
    with tarfile.open(args.archive) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(".jpg")),
                         key=lambda m: m.name)
        for m in members:
            cls = os.path.basename(os.path.dirname(m.name))
            k = taken.get(cls, 0)
            if k >= args.per_class:
                continue
            img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
            big = np.asarray(img.resize(SIZES[k % len(SIZES)], Image.BICUBIC), dtype=np.float32)
            big = np.clip(big + rng.normal(0.0, args.noise, big.shape), 0, 255).astype(np.uint8)
            folder = os.path.join(args.out, cls)
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(big).save(os.path.join(folder, os.path.basename(m.name)), quality=90)
            taken[cls] = k + 1
    total = sum(taken.values())
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"{total} images in {len(taken)} classes under {args.out}, {size / total / 1024:.0f} KiB each on average")


if __name__ == "__main__":
    main()
