#!/usr/bin/env python3
"""Checks that the PyTorch reference's forward styles agree: the "shared" style (agnas's fast-path algorithm,
used as the best PyTorch reference in the benchmarks) gives the "fast" style's logits, importances and gradients,
in float64, for an NB201 and a DARTS supernet (with reduction cells). Prints the largest differences; exits 1 above
1e-9.

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
