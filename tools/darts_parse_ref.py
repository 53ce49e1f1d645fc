#!/usr/bin/env python3
"""Fixture for agnas's DARTS derivation rule, from a transcription of the official AGNAS ``_parse``.

Transcribes ``_parse(Atten_weights)`` in ``Darts_Search_Space/train_search.py`` of Sunzh1996/AGNAS at commit
bbeb8a58b95208f85b60e20f0d5b76d1de87ed85 (2022-08-29). That is the function AGNAS applies to the attention
importances accumulated over an epoch (``np.sum`` over the per-step ``op_Attention`` lists, one (14, 8) matrix
per cell); it is the same rule as ``Network.genotype()._parse`` in ``Darts_Search_Space/model_search.py`` and as
DARTS' ``cnn/model_search.py`` (quark0/darts f276dd346a09ae3160f8e3aca5c7b193fda1da37), where it reads
softmaxed alphas instead. Ops are in the AGNAS ``PRIMITIVES`` order (``genotypes.py``), ``none`` last; DARTS
puts ``none`` first, which changes nothing in the rule since ``none`` is skipped by index.

The rule, for intermediate node i (edges from states 0..i+1, node-major):
  * the two input edges are the first two of ``sorted(range(i + 2), key=-best)`` with ``best`` the maximum
    over non-``none`` ops of the edge: Python's sort is stable, so equal strengths keep the lower edge first,
    and the pairs are emitted in that order (strongest first, not by input index);
  * each edge's op is found by a loop over the ops that replaces the best only on a strict ``>``: the first
    maximum among non-``none`` ops.
The official function hard-codes 4 steps and ``range(2, 6)`` as concat; here the steps are a parameter
(as in ``model_search.py``'s ``self._steps``) and concat is ``range(2, steps + 2)`` (multiplier = steps).

Writes ``crates/agnas/tests/fixtures/darts_parse.json`` (checked by ``crates/agnas/tests/darts_derive.rs``):

    /root/.cache/agnas/torch-2.11.0/bin/python tools/darts_parse_ref.py [--out PATH] [--official MIRROR]

``--official`` (e.g. ``/work/.mirror/Sunzh1996+AGNAS/repo``) also runs the official ``_parse`` itself, taken
from the git mirror with ``git show`` and ``ast`` at run time, on every 4-step case and checks that it gives
the same genotypes as the transcription.

Values are rounded (``np.round``) so that their shortest decimal form reads back as the same f64 in Rust;
the expected genotype is computed on the rounded values. Deterministic: a fixed NumPy seed.
"""
import argparse
import ast
import json
import os
import subprocess

import numpy as np

PRIMITIVES = [
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "skip_connect",
    "avg_pool_3x3",
    "max_pool_3x3",
    "none",
]
NONE = PRIMITIVES.index("none")
SEED = 20220829


def official_parse(weights, steps):
    """The official ``_parse`` on a (edges, 8) array of importances, generalised to ``steps`` nodes."""
    gene = []
    first = 0
    for node in range(steps):
        inputs = node + 2
        block = weights[first:first + inputs]

        def strength(e):
            # Python's max over a generator keeps the first of equal values; only the value matters here.
            return max(block[e][k] for k in range(len(block[e])) if k != NONE)

        chosen = sorted(range(inputs), key=lambda e: -strength(e))[:2]
        for e in chosen:
            best = None
            for k in range(len(block[e])):
                if k == NONE:
                    continue
                if best is None or block[e][k] > block[e][best]:
                    best = k
            gene.append((PRIMITIVES[best], e))
        first += inputs
    return gene, list(range(2, steps + 2))


def edges_of(steps):
    return sum(i + 2 for i in range(steps))


def make_cases(rng):
    cases = []

    def add(name, steps, imp):
        imp = [[float(v) for v in row] for row in imp]  # Python floats (f64), as np.sum of .item() gives
        assert len(imp) == edges_of(steps) and all(len(r) == len(PRIMITIVES) for r in imp)
        gene, concat = official_parse(imp, steps)
        cases.append({
            "name": name,
            "steps": steps,
            "importance": imp,
            "genotype": [[op, j] for op, j in gene],
            "concat": concat,
        })

    shape = lambda s: (edges_of(s), len(PRIMITIVES))  # noqa: E731

    # Random uniform importances, distinct almost everywhere.
    for c in range(100):
        add(f"uniform_s4_{c:03d}", 4, np.round(rng.uniform(0.0, 1.0, shape(4)), 4))
    # Accumulated-attention scale: sums of sigmoid gates over an epoch (hundreds to thousands).
    for c in range(20):
        add(f"epoch_scale_s4_{c:03d}", 4, np.round(rng.uniform(200.0, 5000.0, shape(4)), 2))
    # Exact ties everywhere: values from {0, 1, 2} (edge ties and op ties, first-maximum and stable order).
    for c in range(50):
        add(f"ties012_s4_{c:03d}", 4, rng.integers(0, 3, shape(4)).astype(np.float64))
    # Ties on a two-value set, so most edges have equal strength and most ops tie.
    for c in range(15):
        add(f"ties01_s4_{c:03d}", 4, rng.integers(0, 2, shape(4)).astype(np.float64))
    # `none` the largest op on every edge (it must never be chosen nor rank an edge).
    for c in range(15):
        imp = np.round(rng.uniform(0.0, 1.0, shape(4)), 4)
        imp[:, NONE] = np.round(imp.max(axis=1) + rng.uniform(0.5, 2.0, shape(4)[0]), 4)
        add(f"none_max_s4_{c:03d}", 4, imp)
    # `none` largest everywhere and the other ops tied.
    for c in range(10):
        imp = rng.integers(0, 3, shape(4)).astype(np.float64)
        imp[:, NONE] = 5.0
        add(f"none_max_ties_s4_{c:03d}", 4, imp)
    # `none` largest on the edge that would otherwise be weakest (ranking by `none` would flip the choice).
    for c in range(10):
        imp = np.round(rng.uniform(0.0, 1.0, shape(4)), 4)
        imp[:, NONE] = np.round(2.0 - imp[:, :NONE].max(axis=1), 4)
        add(f"none_inverse_s4_{c:03d}", 4, imp)
    # All equal: every node takes its first two inputs, every edge the first op.
    add("constant_s4", 4, np.ones(shape(4)))
    add("constant_zero_s4", 4, np.zeros(shape(4)))
    # Fewer nodes.
    for steps in (2, 3):
        for c in range(8):
            add(f"uniform_s{steps}_{c:03d}", steps, np.round(rng.uniform(0.0, 1.0, shape(steps)), 4))
        for c in range(8):
            add(f"ties012_s{steps}_{c:03d}", steps, rng.integers(0, 3, shape(steps)).astype(np.float64))
        for c in range(3):
            imp = np.round(rng.uniform(0.0, 1.0, shape(steps)), 4)
            imp[:, NONE] = 3.0
            add(f"none_max_s{steps}_{c:03d}", steps, imp)
    return cases


def official_function(mirror, rev):
    """The module-level ``_parse`` of the official ``train_search.py``, compiled alone (no torch import)."""
    src = subprocess.run(["git", "-C", mirror, "show", f"{rev}:Darts_Search_Space/train_search.py"],
                         check=True, capture_output=True, text=True).stdout
    fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == "_parse")
    scope = {"PRIMITIVES": PRIMITIVES}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "train_search.py", "exec"), scope)
    return scope["_parse"]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(root, "crates/agnas/tests/fixtures/darts_parse.json"))
    ap.add_argument("--official", metavar="MIRROR", help="git mirror of Sunzh1996/AGNAS to check against")
    ap.add_argument("--rev", default="bbeb8a58b95208f85b60e20f0d5b76d1de87ed85")
    args = ap.parse_args()
    cases = make_cases(np.random.default_rng(SEED))
    names = [c["name"] for c in cases]
    assert len(set(names)) == len(names)
    # Every value must survive the text round trip exactly.
    for c in cases:
        for row in c["importance"]:
            assert all(float(repr(v)) == v for v in row)
    if args.official:
        parse = official_function(args.official, args.rev)
        four = [c for c in cases if c["steps"] == 4]
        for c in four:
            got = [[op, j] for op, j in parse(np.array(c["importance"]))]
            assert got == c["genotype"], (c["name"], got, c["genotype"])
        print(f"the official _parse agrees on all {len(four)} 4-step cases")
    with open(args.out, "w") as f:
        f.write("[\n")
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
        f.write("\n]\n")
    print(f"wrote {len(cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
