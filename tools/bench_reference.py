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

``--space proxyless``: the ProxylessNAS macro supernet of
``tools/proxyless_ref.py`` at ``--width-mult`` (default 1.0) on
``--image-size`` inputs (``--C``, ``--N``, ``--layers``, ``--ratio`` are
ignored), with the macro search recipe that ``agnas bench step`` uses (the
``paper`` preset): label smoothing 0.1, SGD lr 0.25 momentum 0.9, weight decay
4e-5 on the 4-D (conv) weights and the classifier only, gradients clipped by
value at 5.  Its styles:

  official: the reference's modules as they are (the official
            ``att_supernet.py`` data flow): each MBConv with its residual,
            candidate outputs and x concatenated, SE on the concatenation,
            gated groups summed; the official ``CrossEntropyLabelSmooth``.
  fast:     what a PyTorch user writes: no concatenation of the maps, each
            candidate (residual included) squeezed on its own, gated sum.
  shared:   agnas's fast path written in PyTorch (``supernet.rs``): x
            squeezed once, the identity and every inner residual folded into
            one x * sum(gates), squeezes as sum / HW, gated terms added in
            place (``addcmul_``), foreach optimizer and clipping.

    python tools/bench_reference.py --space proxyless --width-mult 0.5 --image-size 64 \
        --batch-size 32 --layout nchw --style shared --steps 5 --warmup 2 --threads 2

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
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agnas_ref as R  # noqa: E402
import proxyless_ref as P  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="nb201", choices=["nb201", "darts", "proxyless"])
    ap.add_argument("--layout", default="nchw", choices=["nchw", "channels_last"])
    ap.add_argument("--style", default="official", choices=["official", "fast", "shared"],
                    help="official: concat + SE, .item() per op; fast: gated sum; shared: the agnas fast-path "
                         "algorithm in PyTorch (per-node ReLU/pools/squeezes, in-place accumulation)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="cuda: time with torch.cuda.synchronize() around each lap (the step itself has no sync "
                         "except the official style's own .item() calls); peak_gpu_mb is torch's allocator peak")
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=5, help="nb201: search cells per stage")
    ap.add_argument("--layers", type=int, default=8, help="darts: number of cells")
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--ratio", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--width-mult", type=float, default=1.0, help="proxyless: channel multiplier")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--amp", default="none", choices=["none", "bf16"],
                    help="automatic mixed precision: the forward and the loss under torch.autocast in bf16")
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
# The blocks of ``agnas bench blocks --space proxyless``: two MBConvs with their residual (C -> C, stride 1) and a
# search block keeping shape (six MBConvs and the identity), at C = --C channels.
PROXYLESS_BLOCKS = ["mbconv_k3e3", "mbconv_k7e6", "search_block"]
BLOCKS = {"nb201": NB201_BLOCKS, "darts": DARTS_BLOCKS, "proxyless": PROXYLESS_BLOCKS}


# ---------------------------------------------------------------------------
# ProxylessNAS macro space: the forward styles of a search block
# ---------------------------------------------------------------------------

def _squeeze(t):
    """Global average pooling as sum / HW (what agnas's ``nn::mixed::squeeze`` does)."""
    return t.sum((2, 3)) / (t.shape[2] * t.shape[3])


def _search_block_fast(self, x):
    """The gated sum without concatenating the maps: each candidate (its residual included) squeezed on its own."""
    outs = [op(x) for op in self._ops]
    if self.identity:
        outs.append(x)
    return self.gated_sum(outs, self.attention_layer.fc(torch.cat([o.mean((2, 3)) for o in outs], 1)))


def _search_block_shared(self, x):
    """agnas's fast path (``space/proxyless/supernet.rs``): the MBConvs without their residual, x squeezed once
    (squeeze(x + b) = squeeze(x) + squeeze(b)), gated branches added in place, and the identity and all residuals
    folded into one x * (sum of all gates)."""
    branches = [op.conv(x) for op in self._ops]
    if self.identity:
        sx = _squeeze(x)
        squeezed = [_squeeze(b) + sx for b in branches] + [sx]
    else:
        squeezed = [_squeeze(b) for b in branches]
    gates = self.attention_layer.fc(torch.cat(squeezed, 1))
    g = gates.view(x.shape[0], self.n_cand, self.oup)
    out = branches[0] * g[:, 0, :, None, None]
    for k in range(1, len(branches)):
        out.addcmul_(branches[k], g[:, k, :, None, None])
    if self.identity:
        out.addcmul_(x, g.sum(1)[:, :, None, None])
    return out, g.detach().mean(2).sum(0)


PROXYLESS_STYLES = {"official": None, "fast": _search_block_fast, "shared": _search_block_shared}


def set_proxyless_style(model, style):
    """Forward style of every ``proxyless_ref.SearchBlock`` in ``model``: official, fast or shared."""
    forward = PROXYLESS_STYLES[style]
    for m in model.modules():
        if isinstance(m, P.SearchBlock):
            m.__dict__.pop("forward", None)
            if forward is not None:
                m.forward = types.MethodType(forward, m)
    return model


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
    elif space == "proxyless":
        if name == "mbconv_k3e3":
            return P.MBConv(C, C, 3, 1, 3), [fmap]
        if name == "mbconv_k7e6":
            return P.MBConv(C, C, 7, 1, 6), [fmap]
        if name == "search_block":
            return P.SearchBlock(C, C, 1), [fmap]
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
        if args.space == "proxyless":
            set_proxyless_style(block, args.style)
        else:
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
    info = {"impl": "pytorch", "space": args.space, "layout": args.layout, "style": args.style,
            "batch_size": args.batch_size, "threads": args.threads, "warmup": args.warmup, "C": args.C,
            "torch": torch.__version__, "device": args.device}
    if args.space == "proxyless":
        info.update(width_mult=args.width_mult, image_size=args.image_size)
    return info


def proxyless_training(model, style):
    """(loss function, optimizer, clipping) of the macro search recipe (``agnas bench step``'s ``paper`` preset):
    label smoothing 0.1; SGD lr 0.25, momentum 0.9, weight decay 4e-5 on 4-D weights and the classifier only;
    gradients clipped by value at 5. The official style uses the official ``CrossEntropyLabelSmooth`` formula and
    per-parameter loops; the others ``F.cross_entropy(label_smoothing=0.1)`` and the foreach kernels."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() == 4 or name.startswith("classifier.") else no_decay).append(p)
    official = style == "official"
    groups = [{"params": decay, "weight_decay": 4e-5}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.SGD(groups, lr=0.25, momentum=0.9, foreach=not official)
    params = decay + no_decay

    if official:
        def loss_fn(logits, labels):
            return P.label_smoothing_ce(logits, labels, 0.1)

        def clip():
            nn.utils.clip_grad_value_(params, 5.0)
    else:
        def loss_fn(logits, labels):
            return F.cross_entropy(logits, labels, label_smoothing=0.1)

        def clip():
            grads = [p.grad for p in params if p.grad is not None]
            torch._foreach_clamp_min_(grads, -5.0)
            torch._foreach_clamp_max_(grads, 5.0)
    return loss_fn, opt, clip


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
    if args.space == "proxyless":
        model = P.ProxylessSupernet(n_class=args.num_classes, input_size=args.image_size,
                                    width_mult=args.width_mult)
        set_proxyless_style(model, args.style)
    elif args.space == "darts":
        model = R.DartsSupernet(C=args.C, num_classes=args.num_classes, layers=args.layers,
                                ratio=args.ratio, official=official)
    else:
        model = R.NB201Supernet(C=args.C, N=args.N, num_classes=args.num_classes,
                                ratio=args.ratio, official=official)
    if args.space != "proxyless":
        R.set_style(model, args.style)
    model.train()
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), dtype=torch.int64)
    device = torch.device(args.device)
    model, x, labels = model.to(device), x.to(device), labels.to(device)
    if args.layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    if args.space == "proxyless":
        loss_fn, opt, clip = proxyless_training(model, args.style)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)

        def loss_fn(logits, labels):
            return F.cross_entropy(logits, labels)

        def clip():
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)

    def now():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    def step(laps):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            logits, _importance = model(x)
            loss = loss_fn(logits, labels)
        laps.append(now())
        loss.backward()
        laps.append(now())
        clip()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step([])

    times_ms = []
    parts_ms = ([], [], [])  # forward + loss (with zero_grad), backward, clip + SGD
    loss = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.steps):
        t0 = now()
        laps = []
        loss = step(laps)
        t3 = now()
        times_ms.append((t3 - t0) * 1e3)
        for part, (a, b) in zip(parts_ms, zip([t0] + laps, laps + [t3])):
            part.append((b - a) * 1e3)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    shape = {} if args.space == "proxyless" else {"N": args.N}
    result = dict(run_info(args), steps=args.steps, **shape,
                  median_ms=round(statistics.median(times_ms), 3),
                  mean_ms=round(statistics.fmean(times_ms), 3),
                  min_ms=round(min(times_ms), 3),
                  forward_ms=round(statistics.median(parts_ms[0]), 3),
                  backward_ms=round(statistics.median(parts_ms[1]), 3),
                  optimizer_ms=round(statistics.median(parts_ms[2]), 3),
                  peak_rss_mb=round(peak_rss_mb, 1),
                  final_loss=round(float(loss.item()), 6))
    if args.space == "darts":
        result["layers"] = args.layers
    result["amp"] = args.amp
    if device.type == "cuda":
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
