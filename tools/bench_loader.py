#!/usr/bin/env python3
"""Loader throughput: `agnas bench loader` against torchvision's PIL pipeline, same folder, same run.

(a) <binary> bench loader --data DIR --workers N --batch-size B --image-size S [--eval --resize R]
(b) torchvision: ImageFolder(DIR) with RandomResizedCrop(S), RandomHorizontalFlip(), ColorJitter(0.4, 0.4, 0.4,
    0.2), ToTensor(), Normalize(ImageNet) (or Resize(R), CenterCrop(S), ToTensor(), Normalize with --eval) through
    DataLoader(num_workers=N, batch_size=B, shuffle=True, drop_last=True)

Both decode every JPEG on demand in their worker threads/processes and skip the first batch (start-up), then time
one pass over the rest of the folder. Prints both JSON lines and the ratio (> 1: agnas is faster). Example:

    python tools/bench_loader.py --data target/bench-images --workers 2
"""

import argparse
import json
import os
import subprocess
import sys
import time

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TOOLS_DIR)


def torchvision_run(args):
    import torch
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    normalize = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    if args.eval:
        steps = [T.Resize(args.resize), T.CenterCrop(args.size)]
    else:
        steps = [T.RandomResizedCrop(args.size), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4, 0.2)]
    dataset = ImageFolder(args.data, T.Compose(steps + [T.ToTensor(), normalize]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers)
    batches = iter(loader)
    next(batches)
    start = time.perf_counter()
    images = sum(len(y) for _, y in batches)
    seconds = time.perf_counter() - start
    return {"impl": "torchvision", "transform": "eval" if args.eval else "train", "size": args.size,
            "workers": args.workers, "batch_size": args.batch_size, "images": images, "seconds": seconds,
            "images_per_s": images / seconds, "images_per_s_per_worker": images / seconds / args.workers}


def agnas_run(args):
    cmd = [args.binary, "bench", "loader", "--data", args.data, "--workers", str(args.workers),
           "--batch-size", str(args.batch_size), "--image-size", str(args.size)]
    if args.eval:
        cmd += ["--eval", "--resize", str(args.resize)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="class folders of JPEGs (tools/make_loader_bench_images.py)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--eval", action="store_true", help="Resize + CenterCrop instead of the training transform")
    ap.add_argument("--binary", default=os.path.join(REPO_ROOT, "target", "release", "agnas"))
    ap.add_argument("--torchvision-only", action="store_true", help="run only (b), in this process")
    args = ap.parse_args()
    if args.torchvision_only:
        print(json.dumps(torchvision_run(args)))
        return
    ours = agnas_run(args)
    # torchvision in its own process, as agnas runs in its own.
    theirs_cmd = [sys.executable, __file__, "--torchvision-only"] + sys.argv[1:]
    theirs = json.loads(subprocess.run(theirs_cmd, check=True, capture_output=True, text=True).stdout.strip())
    print(json.dumps(ours))
    print(json.dumps(theirs))
    print(f"images/s: agnas {ours['images_per_s']:.1f}, torchvision {theirs['images_per_s']:.1f}, "
          f"ratio {ours['images_per_s'] / theirs['images_per_s']:.2f}")


if __name__ == "__main__":
    main()
