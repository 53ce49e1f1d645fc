#!/usr/bin/env python3
"""PyTorch side of the AGNAS supernet training-step benchmark.

Example:

    python tools/bench_reference.py --space nb201 --layout nchw --style official \\
        --steps 5 --warmup 2 --batch-size 64 --threads 2 --C 16 --N 5
    python tools/bench_reference.py --space darts --layout nchw --style official \\
        --steps 5 --warmup 2 --batch-size 64 --threads 2 --C 16 --layers 8

``--space nb201``: NB201Supernet(C, N); ``--space darts``: DartsSupernet(C,
layers) (the AGNAS DARTS-space search supernet; ``--C`` defaults to 16 there
too, ``--N`` is ignored).

One step = zero_grad, forward, cross-entropy, backward, clip_grad_norm_(5),
SGD step.  Prints one JSON line.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agnas_ref as R  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="nb201", choices=["nb201", "darts"])
    ap.add_argument("--layout", default="nchw", choices=["nchw", "channels_last"])
    ap.add_argument("--style", default="official", choices=["official", "fast"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=5, help="nb201: search cells per stage")
    ap.add_argument("--layers", type=int, default=8, help="darts: number of cells")
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--ratio", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.steps < 1:
        sys.exit("--steps must be >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    official = args.style == "official"
    if args.space == "darts":
        model = R.DartsSupernet(C=args.C, num_classes=args.num_classes, layers=args.layers,
                                ratio=args.ratio, official=official)
    else:
        model = R.NB201Supernet(C=args.C, N=args.N, num_classes=args.num_classes,
                                ratio=args.ratio, official=official)
    model.train()
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), dtype=torch.int64)
    if args.layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        logits, _importance = model(x)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()

    times_ms = []
    loss = None
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times_ms.append((time.perf_counter() - t0) * 1e3)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {
        "impl": "pytorch",
        "space": args.space,
        "layout": args.layout,
        "style": args.style,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "steps": args.steps,
        "warmup": args.warmup,
        "C": args.C,
        "N": args.N,
        "median_ms": round(statistics.median(times_ms), 3),
        "mean_ms": round(statistics.fmean(times_ms), 3),
        "min_ms": round(min(times_ms), 3),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "final_loss": round(float(loss.item()), 6),
        "torch": torch.__version__,
    }
    if args.space == "darts":
        result["layers"] = args.layers
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
