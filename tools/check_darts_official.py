#!/usr/bin/env python3
"""Check the DARTS-space reference in ``agnas_ref.py`` against the official AGNAS code.

Extracts ``Darts_Search_Space/{model_search,model,operations,genotypes}.py``
from a git mirror of Sunzh1996/AGNAS into a temporary directory, imports them
(``utils`` is replaced by a stub with ``drop_path`` because the official one
needs torchvision), and compares state_dict keys/shapes, parameter counts,
genotype data and (after loading the official weights) forward/backward numbers.

    python tools/check_darts_official.py [--mirror /work/.mirror/Sunzh1996+AGNAS/repo]
"""
import argparse
import copy
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import types

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agnas_ref as R  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--mirror", default="/work/.mirror/Sunzh1996+AGNAS/repo")
ap.add_argument("--rev", default="HEAD")
args = ap.parse_args()
tmp = tempfile.mkdtemp(prefix="agnas_official_")
for f in ("model_search.py", "model.py", "operations.py", "genotypes.py"):
    src = subprocess.run(["git", "-C", args.mirror, "show", f"{args.rev}:Darts_Search_Space/{f}"],
                         check=True, capture_output=True).stdout
    with open(os.path.join(tmp, f), "wb") as fh:
        fh.write(src)
sys.path.insert(0, tmp)
torch.set_num_threads(1)

# model.py imports utils (torchvision); give it a stub with drop_path only
u = types.ModuleType("utils")


def _dp(x, p):
    if p > 0.:
        keep = 1. - p
        m = torch.empty(x.size(0), 1, 1, 1).bernoulli_(keep)
        x.div_(keep); x.mul_(m)
    return x


u.drop_path = _dp
sys.modules["utils"] = u
import model_search, model, genotypes  # noqa: E402,E401


def cmp(name, a, b):
    sa = [(k, tuple(v.shape)) for k, v in a.state_dict().items()]
    sb = [(k, tuple(v.shape)) for k, v in b.state_dict().items()]
    ok = sa == sb
    print(f"{name}: official {len(sa)} keys, ours {len(sb)} keys, identical (order+shape): {ok}")
    if not ok:
        da = dict(sa); db = dict(sb)
        print("  only official:", [k for k in da if k not in db][:10])
        print("  only ours:", [k for k in db if k not in da][:10])
        print("  shape diff:", [k for k in da if k in db and da[k] != db[k]][:10])
        print("  order same set:", set(sa) == set(sb))
    return ok

with contextlib.redirect_stdout(io.StringIO()):
    off = model_search.Network(16, 10, 8, nn.CrossEntropyLoss())
cmp("supernet C16 L8", off, R.DartsSupernet(16, 10, 8))
with contextlib.redirect_stdout(io.StringIO()):
    off = model_search.Network(4, 10, 5, nn.CrossEntropyLoss())
cmp("supernet C4 L5", off, R.DartsSupernet(4, 10, 5))

for gname, og, rg in [("AGNAS", genotypes.AGNAS, R.AGNAS)]:
    for (C, nc, L) in [(36, 10, 20), (36, 100, 20), (4, 10, 5)]:
        with contextlib.redirect_stdout(io.StringIO()):
            off = model.NetworkCIFAR(C, nc, L, True, og)
        ours = R.NetworkCIFAR(C, nc, L, True, rg)
        cmp(f"NetworkCIFAR {gname} C{C} nc{nc} L{L}", off, ours)
        print("   params official-excl-aux", sum(v.numel() for n, v in off.named_parameters() if "auxiliary" not in n), "ours", R.count_params(ours),
              "total", sum(p.numel() for p in ours.parameters()))
# DARTS_V2: official model.py indexes genotype[0..4]; build a 5-list from the Genotype
for gname, og, rg in [("DARTS_V2", genotypes.DARTS_V2, R.DARTS_V2), ("DARTS_V1", genotypes.DARTS_V1, R.DARTS_V1)]:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model.NetworkCIFAR(36, 10, 20, True, og)
        print(gname, "official accepts a plain Genotype")
    except Exception as e:
        print(gname, "official NetworkCIFAR with a plain Genotype fails:", type(e).__name__, e)
    for (C, nc, L) in [(36, 10, 20), (4, 10, 5)]:
        with contextlib.redirect_stdout(io.StringIO()):
            off = model.NetworkCIFAR(C, nc, L, True, [og] * 5)
        ours = R.NetworkCIFAR(C, nc, L, True, rg)
        cmp(f"NetworkCIFAR {gname} C{C} L{L} (official fed [g]*5)", off, ours)
        print("   params excl aux", R.count_params(ours), "aux", sum(p.numel() for n, p in ours.named_parameters() if "auxiliary" in n))

# numeric check: copy official weights into ours, compare forward/backward
torch.manual_seed(0)
def numeric(off, ours, x, kind):
    ours.load_state_dict(off.state_dict())
    off.train(); ours.train()
    yo = off(x); yr = ours(x)
    if kind == "search":
        lo, ln, lrd = yo
        lr_, imp = yr
        print("  logits maxdiff", (lo - lr_).abs().max().item())
        # interleave official normal/reduce lists back into cell order
        n = r = 0; rows = []
        for c in off.cells:
            if c.reduction: rows.append(lrd[r]); r += 1
            else: rows.append(ln[n]); n += 1
        ti = torch.tensor(rows)
        print("  importance maxdiff", (ti - imp).abs().max().item(), tuple(imp.shape))
        lo.sum().backward(); lr_.sum().backward()
    else:
        print("  logits maxdiff", (yo[0] - yr[0]).abs().max().item(), " aux maxdiff", (yo[1] - yr[1]).abs().max().item())
        (yo[0].sum() + yo[1].sum()).backward(); (yr[0].sum() + yr[1].sum()).backward()
    po = dict(off.named_parameters()); pr = dict(ours.named_parameters())
    print("  grad maxdiff", max((po[k].grad - pr[k].grad).abs().max().item() for k in po))
    so = off.state_dict(); sr = ours.state_dict()
    print("  running-stat maxdiff", max((so[k].float() - sr[k].float()).abs().max().item() for k in so))

with contextlib.redirect_stdout(io.StringIO()):
    off = model_search.Network(4, 10, 5, nn.CrossEntropyLoss())
for official in (False, True):
    o = copy.deepcopy(off)
    print("search numeric, official style" if official else "search numeric, fast style")
    numeric(o, R.DartsSupernet(4, 10, 5, official=official), torch.randn(2, 3, 16, 16), "search")
with contextlib.redirect_stdout(io.StringIO()):
    off = model.NetworkCIFAR(4, 10, 5, True, genotypes.AGNAS)
off.drop_path_prob = 0.0
print("eval numeric AGNAS")
numeric(off, R.NetworkCIFAR(4, 10, 5, True, R.AGNAS), torch.randn(2, 3, 32, 32), "eval")
with contextlib.redirect_stdout(io.StringIO()):
    off = model.NetworkCIFAR(4, 10, 5, True, [genotypes.DARTS_V2]*5)
off.drop_path_prob = 0.0
print("eval numeric DARTS_V2")
numeric(off, R.NetworkCIFAR(4, 10, 5, True, R.DARTS_V2), torch.randn(2, 3, 32, 32), "eval")
# genotype data equality
def norm(g): return [tuple(e) for e in g]
ok = all(norm(getattr(a, f)) == norm(getattr(b, f)) and list(getattr(a, f + "_concat")) == list(getattr(b, f + "_concat"))
         for a, b in zip(genotypes.AGNAS, R.AGNAS) for f in (a._fields[0],))
print("AGNAS data equal:", ok)
for n in ("DARTS_V1", "DARTS_V2"):
    a = getattr(genotypes, n); b = getattr(R, n)
    print(n, "data equal:", all(norm(getattr(a, f)) == norm(getattr(b, f)) if "concat" not in f else list(getattr(a, f)) == list(getattr(b, f)) for f in a._fields))
