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

Building-block mode (``--blocks``) times forward and backward of each block of
the chosen space separately instead of a whole training step:

    python tools/bench_reference.py --blocks --space nb201 --layout nchw --style official \
        --iters 10 --warmup 2 --batch-size 64 --threads 2 --C 16
    python tools/bench_reference.py --blocks --space darts --layout channels_last --style fast

Blocks (train mode, BatchNorm affine=False as in the search supernets, input
(B, C, S, S) with S = --image-size unless stated):

  nb201: relu_conv_bn_1x1, relu_conv_bn_3x3 (the nor_conv ops), avg_pool_3x3
         (stride 1, count_include_pad=False), se_attention (FC-ReLU-FC-sigmoid of
         SEAttention over 5C channels on a (B, 5C) input, without its pooling),
         mixed_op (MixedOp), cell (NB201SearchCell, 6 edges)
  darts: sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5 (stride 1),
         max_pool_3x3_bn, avg_pool_3x3_bn (stride-1 pool + BatchNorm2d),
         factorized_reduce (C -> C, output S/2), mixed_op (DartsMixedOp stride
         1), mixed_op_s2 (DartsMixedOp stride 2), cell (normal DartsSearchCell,
         C_prev_prev = C_prev = 3C, inputs s0, s1 both (B, 3C, S, S))

``--style`` only affects mixed_op, mixed_op_s2 and cell.  Per iteration (after
--warmup untimed ones): grads set to None (untimed), forward ``y = block(x)``
(timed; mixed ops and cells: the output tensor, not the importance), then
``(y * gy).sum().backward()`` (timed) with a fixed random ``gy`` shaped like
``y``.  Prints one JSON line per block:

    {"impl": "pytorch", "space": ..., "block": NAME, "layout": ..., "style": ...,
     "batch_size": B, "threads": T, "forward_ms": median, "backward_ms": median,
     "iters": N, ...}
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
    ap.add_argument("--style", default="official", choices=["official", "fast", "shared"],
                    help="official: concat + SE, .item() per op; fast: gated sum; shared: the agnas fast-path "
                         "algorithm in PyTorch (per-node ReLU/pools/squeezes, in-place accumulation)")
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
    ap.add_argument("--blocks", action="store_true",
                    help="time forward/backward of the building blocks instead of a train step")
    ap.add_argument("--iters", type=int, default=10, help="--blocks: timed iterations per block")
    ap.add_argument("--block", action="append", default=None, metavar="NAME",
                    help="--blocks: only this block (may be repeated; default: all)")
    return ap.parse_args(argv)


# ---------------------------------------------------------------------------
# building-block mode
# ---------------------------------------------------------------------------

NB201_BLOCKS = ["relu_conv_bn_1x1", "relu_conv_bn_3x3", "avg_pool_3x3", "se_attention",
                "mixed_op", "cell"]
DARTS_BLOCKS = ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
                "max_pool_3x3_bn", "avg_pool_3x3_bn", "factorized_reduce", "mixed_op",
                "mixed_op_s2", "cell"]
BLOCKS = {"nb201": NB201_BLOCKS, "darts": DARTS_BLOCKS}


class SEGates(nn.Module):
    """SEAttention without its global average pool: FC-ReLU-FC-sigmoid on (B, channels)."""

    def __init__(self, channels, ratio=8):
        super().__init__()
        self.attention = R.SEAttention(channels, ratio)

    def forward(self, v):
        return self.attention.fc(v)


def build_block(space, name, C, ratio, official, batch_size, size):
    """-> (module, list of input shapes) for block ``name`` of ``space``."""
    B, S = batch_size, size
    fmap = (B, C, S, S)
    if space == "nb201":
        if name == "relu_conv_bn_1x1":
            return R.nb201_op("nor_conv_1x1", C), [fmap]
        if name == "relu_conv_bn_3x3":
            return R.nb201_op("nor_conv_3x3", C), [fmap]
        if name == "avg_pool_3x3":
            return R.nb201_op("avg_pool_3x3", C), [fmap]
        if name == "se_attention":
            K = len(R.NB201_OPS)
            return SEGates(K * C, ratio), [(B, K * C)]
        if name == "mixed_op":
            return R.MixedOp(C, ratio, official), [fmap]
        if name == "cell":
            return R.NB201SearchCell(C, ratio, official), [fmap]
    else:
        if name in ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"):
            return R._darts_search_op(name, C, 1), [fmap]
        if name in ("max_pool_3x3_bn", "avg_pool_3x3_bn"):
            # the supernet's pool: stride-1 pool followed by BatchNorm2d(C, affine=False)
            return R._darts_search_op(name[:-len("_bn")], C, 1), [fmap]
        if name == "factorized_reduce":
            return R.FactorizedReduce(C, C, affine=False), [fmap]
        if name == "mixed_op":
            return R.DartsMixedOp(C, 1, ratio, official), [fmap]
        if name == "mixed_op_s2":
            return R.DartsMixedOp(C, 2, ratio, official), [fmap]
        if name == "cell":
            # a normal cell right after the stem: steps 4, multiplier 4, inputs 3C channels
            C_in = 3 * C
            cell = R.DartsSearchCell(4, 4, C_in, C_in, C, False, False, ratio, official)
            return cell, [(B, C_in, S, S), (B, C_in, S, S)]
    raise ValueError(f"unknown {space} block {name!r}")


def bench_block(block, xs, iters, warmup, channels_last, seed):
    """Time ``iters`` forward / backward passes after ``warmup`` untimed ones -> (fwd ms list, bwd ms list)."""
    gen = torch.Generator().manual_seed(seed + 1)
    gy = None
    fwd_ms, bwd_ms = [], []
    for i in range(warmup + iters):
        for x in xs:
            x.grad = None
        block.zero_grad(set_to_none=True)

        t0 = time.perf_counter()
        out = block(*xs)
        t1 = time.perf_counter()
        y = out[0] if isinstance(out, tuple) else out  # mixed ops / cells: (output, importance)
        if gy is None:
            gy = torch.randn(y.shape, generator=gen, dtype=y.dtype)
            if channels_last and gy.dim() == 4:
                gy = gy.contiguous(memory_format=torch.channels_last)

        t2 = time.perf_counter()
        (y * gy).sum().backward()
        t3 = time.perf_counter()
        if i >= warmup:
            fwd_ms.append((t1 - t0) * 1e3)
            bwd_ms.append((t3 - t2) * 1e3)
        del out, y
    return fwd_ms, bwd_ms


def main_blocks(args):
    if args.iters < 1:
        sys.exit("--iters must be >= 1")
    if args.warmup < 0:
        sys.exit("--warmup must be >= 0")
    names = BLOCKS[args.space]
    if args.block:
        unknown = [b for b in args.block if b not in names]
        if unknown:
            sys.exit(f"unknown {args.space} block(s) {unknown}; choose from {names}")
        names = [b for b in names if b in args.block]
    torch.set_num_threads(args.threads)
    official = args.style == "official"
    channels_last = args.layout == "channels_last"

    for name in names:
        torch.manual_seed(args.seed)
        block, shapes = build_block(args.space, name, args.C, args.ratio, official,
                                    args.batch_size, args.image_size)
        R.set_style(block, args.style)
        block.train()
        xs = []
        for shape in shapes:
            x = torch.randn(shape)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            xs.append(x.requires_grad_())
        if channels_last:
            block = block.to(memory_format=torch.channels_last)

        fwd_ms, bwd_ms = bench_block(block, xs, args.iters, args.warmup, channels_last,
                                     args.seed)
        result = dict(run_info(args), block=name, iters=args.iters,
                      forward_ms=round(statistics.median(fwd_ms), 4),
                      backward_ms=round(statistics.median(bwd_ms), 4),
                      input_shapes=[list(s) for s in shapes])
        print(json.dumps(result), flush=True)
        del block, xs


def run_info(args):
    """The fields every JSON line of this script carries."""
    return {"impl": "pytorch", "space": args.space, "layout": args.layout, "style": args.style,
            "batch_size": args.batch_size, "threads": args.threads, "warmup": args.warmup, "C": args.C,
            "torch": torch.__version__}


def main(argv=None):
    args = parse_args(argv)
    if args.blocks:
        main_blocks(args)
        return
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
    R.set_style(model, args.style)
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
    result = dict(run_info(args), steps=args.steps, N=args.N,
                  median_ms=round(statistics.median(times_ms), 3),
                  mean_ms=round(statistics.fmean(times_ms), 3),
                  min_ms=round(min(times_ms), 3),
                  peak_rss_mb=round(peak_rss_mb, 1),
                  final_loss=round(float(loss.item()), 6))
    if args.space == "darts":
        result["layers"] = args.layers
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
