#!/usr/bin/env python3
"""Checks that the PyTorch reference's forward styles agree: the "shared" style (agnas's fast-path algorithm,
used as the best PyTorch reference in the benchmarks) gives the "fast" style's logits, importances and gradients,
in float64, for an NB201 and a DARTS supernet (with reduction cells); and that the ProxylessNAS supernet's "fast" and
"shared" styles (``bench_reference.set_proxyless_style``) give its official forward's numbers. Prints the largest
differences; exits 1 above 1e-9.

    python tools/check_ref_styles.py
"""
import os
import sys, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agnas_ref as R
torch.manual_seed(0)
for build in (lambda: R.NB201Supernet(C=8, N=1), lambda: R.DartsSupernet(C=4, layers=5)):
    m = build().double().train()
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    res = {}
    for style in ("fast", "shared"):
        R.set_style(m, style)
        m.zero_grad()
        torch.manual_seed(1)
        logits, imp = m(x)
        logits.square().sum().backward()
        res[style] = (logits.detach(), imp, [p.grad.clone() for p in m.parameters()])
    a, b = res["fast"], res["shared"]
    diffs = ((a[0] - b[0]).abs().max().item(), (a[1] - b[1]).abs().max().item(),
             max((g1 - g2).abs().max().item() for g1, g2 in zip(a[2], b[2])))
    print(f"{type(m).__name__}: logits {diffs[0]:.1e}, importances {diffs[1]:.1e}, gradients {diffs[2]:.1e}")
    if max(diffs) > 1e-9:
        sys.exit(f"{type(m).__name__}: the shared style differs from the fast style")

# The macro space: the three styles of tools/bench_reference.py against each other (official = the reference's own
# forward), layers with the identity and layers without, in float64. Differences relative to each tensor's largest
# value (at least 1): the train-mode BN over few pixels at the end of this small supernet amplifies rounding into
# every gradient, and some gradients are zero up to rounding (a BN bias in front of a train-mode BN).
import bench_reference as B
import proxyless_ref as P


def rel(a, b):
    return ((a - b).abs().max() / a.abs().max().clamp_min(1.0)).item()


torch.manual_seed(0)
m = P.ProxylessSupernet(n_class=10, width_mult=0.25).double().train()
x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
res = {}
for style in ("official", "fast", "shared"):
    B.set_proxyless_style(m, style)
    m.zero_grad()
    logits, imp = m(x)
    logits.square().sum().backward()
    res[style] = (logits.detach(), imp, [p.grad.clone() for p in m.parameters()])
for style in ("fast", "shared"):
    a, b = res["official"], res[style]
    diffs = (rel(a[0], b[0]), rel(a[1], b[1]), max(rel(g1, g2) for g1, g2 in zip(a[2], b[2])))
    print(f"ProxylessSupernet {style}: relative differences: logits {diffs[0]:.1e}, importances {diffs[1]:.1e}, "
          f"gradients {diffs[2]:.1e}")
    if max(diffs) > 1e-9:
        sys.exit(f"ProxylessSupernet: the {style} style differs from the official style")
