#!/usr/bin/env python3
"""Check the NB201 evaluation network in ``agnas_ref.py`` against the benchmark's own ``TinyNetwork``.

Extracts ``xautodl/models/{cell_operations,cell_infers/cells,cell_infers/tiny_network,cell_searchs/genotypes}.py``
from a git mirror of D-X-Y/AutoDL-Projects into a temporary package (with empty ``__init__.py`` files, since the
real ones import the whole library), and compares, for a few archs: state_dict keys and shapes, the parameter count
(the full-size CIFAR-10 count against the benchmark's ``params_mb``), and, with the reference's weights loaded into
the official network, the logits in train and eval mode, the parameter gradients and the BN running statistics.

    python tools/check_nb201_official.py [--mirror /work/.mirror/D-X-Y+AutoDL-Projects/repo]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agnas_ref as R  # noqa: E402

FILES = ["cell_operations.py", "cell_infers/cells.py", "cell_infers/tiny_network.py", "cell_searchs/genotypes.py"]
ARCHS = {
    # index: (arch, params_mb of the benchmark table)
    6111: ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
           1.073466),
    0: ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
        0.129306),
    None: ("|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|", None),
}


def extract(mirror, rev):
    root = tempfile.mkdtemp(prefix="nb201_official_")
    for sub in ("xautodl", "xautodl/models", "xautodl/models/cell_infers", "xautodl/models/cell_searchs"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        open(os.path.join(root, sub, "__init__.py"), "w").close()
    for f in FILES:
        src = subprocess.run(["git", "-C", mirror, "show", f"{rev}:xautodl/models/{f}"],
                             check=True, capture_output=True).stdout
        with open(os.path.join(root, "xautodl/models", f), "wb") as fh:
            fh.write(src)
    sys.path.insert(0, root)


def shapes(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def max_rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-6)).item()


def check(name, arch, params_mb, official):
    Structure = official["Structure"]
    off = official["TinyNetwork"](16, 5, Structure.str2structure(arch), 10)
    ours = R.NB201Network(16, 5, R.nb201_arch_ops(arch), 10)
    assert shapes(off) == shapes(ours), f"{name}: state_dict keys/shapes differ"
    count = sum(p.numel() for p in ours.parameters())
    if params_mb is not None:
        assert count == round(params_mb * 1e6), f"{name}: {count} params, table {params_mb}"
    print(f"{name}: {len(shapes(ours))} state_dict entries identical, {count} params")

    torch.manual_seed(0)
    off = official["TinyNetwork"](8, 1, Structure.str2structure(arch), 10)
    ours = R.NB201Network(8, 1, R.nb201_arch_ops(arch), 10)
    off.load_state_dict(ours.state_dict())
    x = torch.randn(4, 3, 32, 32)
    labels = torch.randint(0, 10, (4,))
    worst = 0.0
    for train in (True, False):
        off.train(train)
        ours.train(train)
        y_off, y_ours = off(x)[1], ours(x)[0]
        worst = max(worst, max_rel(y_ours, y_off))
        if train:
            F.cross_entropy(y_off, labels).backward()
            F.cross_entropy(y_ours, labels).backward()
            for (k, a), (_, b) in zip(ours.named_parameters(), off.named_parameters()):
                worst = max(worst, max_rel(a.grad, b.grad))
            for (k, a), (_, b) in zip(ours.state_dict().items(), off.state_dict().items()):
                if "running" in k:
                    worst = max(worst, max_rel(a, b))
    assert worst < 1e-5, f"{name}: relative difference {worst}"
    print(f"{name}: logits (train, eval), gradients, running stats within {worst:.1e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirror", default="/work/.mirror/D-X-Y+AutoDL-Projects/repo")
    ap.add_argument("--rev", default="HEAD")
    args = ap.parse_args()
    extract(args.mirror, args.rev)
    torch.set_num_threads(1)
    from xautodl.models.cell_infers.tiny_network import TinyNetwork
    from xautodl.models.cell_searchs.genotypes import Structure
    official = {"TinyNetwork": TinyNetwork, "Structure": Structure}
    for index, (arch, params_mb) in ARCHS.items():
        check(f"arch {index}" if index is not None else "zero-node arch", arch, params_mb, official)


if __name__ == "__main__":
    main()
