#!/usr/bin/env python3
"""Check the ProxylessNAS-space reference in ``proxyless_ref.py`` against the official AGNAS code.

Extracts ``ProxylessNAS_Search_Space/attention_search/{att_supernet,torch_blocks,config}.py`` and
``retrain_architecture/{model,torch_blocks,config}.py`` from a git mirror of Sunzh1996/AGNAS into two temporary
directories and imports each set on its own (both sets have a ``config`` and a ``torch_blocks``). Nothing needs a
stub: these six files import only torch, math and os. The official ``CrossEntropyLabelSmooth``
(``attention_search/utils.py``, which needs torchvision and cv2) and ``handle_attention_weights``
(``compute_attention.py``, which parses arguments when imported) are taken out of their files with ``ast`` and run
alone. The FLOPs lookup tables are read from the mirror's ``op_flops_dict_*.pkl`` (plain dicts, loaded with an
unpickler that refuses every global) and from the JSON copies in ``--lut-dir``.

Checks:
  1. state_dict keys, order and shapes identical, and the same initial values from the same seed (supernet at widths 1.0, 0.5, 0.1 and 1.3; retrain networks of the
     released and the alternative architecture at widths 1.0 and 0.1); parameter counts 30,778,976 (supernet),
     6,728,936 (released), 6,776,504 (alternative) at width 1.0 with 1000 classes;
  2. the reference refuses id -1 on a layer without identity (the official network silently builds a wrong one);
  3. with the official weights (BN statistics and affine parameters randomised) loaded into the reference, in
     float64: train-mode logits, the label-smoothing loss (ours against the official class), every parameter
     gradient and every BN buffer after the step, the importances (ours against the official
     ``return_attention=True`` gates summed by the official ``handle_attention_weights``), then eval-mode logits and
     importances; retrain networks with the same dropout mask (same seed before each forward); 64 px (where the
     official ``AvgPool2d(input // 32)`` and our adaptive pooling agree) and 224 px at width 0.1; plus a float32 run
     at the fixtures' size;
  4. the ``proxyless_supernet`` and ``proxyless_network`` fixtures replayed on the official modules;
  5. FLOPs: ``proxyless_ref.flops`` against every entry of the width-1.0 table (pkl and JSON), the acceptance numbers,
     and the exact differences of the 0.9 / 0.95 tables.

Prints one line per check and a PASS/FAIL summary; exits 1 on any failure.

    python tools/check_proxyless_official.py [--mirror /work/.mirror/Sunzh1996+AGNAS/repo]
"""
import argparse
import ast
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxyless_ref as R  # noqa: E402
from make_fixtures import randomize_bn  # noqa: E402

SUB = "ProxylessNAS_Search_Space"
RESULTS = []


def report(name, ok, detail=""):
    RESULTS.append((name, bool(ok)))
    print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""))


def git_show(mirror, rev, path):
    return subprocess.run(["git", "-C", mirror, "show", f"{rev}:{path}"], check=True, capture_output=True).stdout


def import_set(mirror, rev, folder, files, main):
    """Imports ``main`` from ``folder``'s files in a fresh temp dir, then forgets the shared module names."""
    tmp = tempfile.mkdtemp(prefix=f"agnas_proxyless_{folder}_")
    for f in files:
        with open(os.path.join(tmp, f), "wb") as fh:
            fh.write(git_show(mirror, rev, f"{SUB}/{folder}/{f}"))
    sys.path.insert(0, tmp)
    try:
        module = __import__(main)
    finally:
        sys.path.remove(tmp)
        for name in [f[:-3] for f in files]:
            sys.modules.pop(name, None)
    return module


def extract_def(mirror, rev, path, name, namespace):
    """Runs only the top-level definition ``name`` of an official file, in ``namespace``."""
    tree = ast.parse(git_show(mirror, rev, path).decode("utf-8"))
    node = next(n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == name)
    exec(compile(ast.Module(body=[node], type_ignores=[]), f"{path}:{name}", "exec"), namespace)
    return namespace[name]


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")


def shapes(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def same_values(a, b):
    """Identical state (the initialisations draw the same numbers in the same order)."""
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def max_rel(a, b, floor=1e-12):
    """Largest difference relative to the largest value of ``b`` (at least ``floor``)."""
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(floor)).item()


# ---------------------------------------------------------------------------

def check_structure(search, retrain):
    for w, nc in ((1.0, 1000), (0.5, 1000), (0.1, 10), (1.3, 10)):
        torch.manual_seed(7)
        off = search.AttSuperNetwork(n_class=nc, input_size=224, width_mult=w)
        torch.manual_seed(7)
        ours = R.ProxylessSupernet(nc, 224, w)
        same = shapes(off) == shapes(ours)
        n_off, n_ours = R.count_params(off), R.count_params(ours)
        init = same and same_values(off, ours)
        detail = f"{len(shapes(ours))} entries, params official {n_off:,} ours {n_ours:,}, same seed -> " + (
            "identical initial state" if init else "different initial state")
        ok = same and n_off == n_ours and init
        if (w, nc) == (1.0, 1000):
            ok = ok and n_ours == 30_778_976
            detail += " (expected 30,778,976)"
        report(f"supernet w={w} classes={nc}: state_dict keys/order/shapes", ok, detail)
    for label, arch, count in (("released", R.RELEASED_ARCH, 6_728_936), ("alternative", R.ALT_ARCH, 6_776_504)):
        for w, nc in ((1.0, 1000), (0.1, 10)):
            torch.manual_seed(7)
            off = retrain.Network(arch, n_class=nc, input_size=224, width_mult=w)
            torch.manual_seed(7)
            ours = R.ProxylessNetwork(arch, nc, 224, w)
            n_off, n_ours = R.count_params(off), R.count_params(ours)
            init = shapes(off) == shapes(ours) and same_values(off, ours)
            ok = shapes(off) == shapes(ours) and n_off == n_ours and init
            detail = f"{len(shapes(ours))} entries, params official {n_off:,} ours {n_ours:,}, same seed -> " + (
                "identical initial state" if init else "different initial state")
            if (w, nc) == (1.0, 1000):
                ok = ok and n_ours == count
                detail += f" (expected {count:,})"
            report(f"retrain {label} w={w} classes={nc}: state_dict keys/order/shapes", ok, detail)
    # id -1 where the layer has no identity: the official network builds (skipping the layer and so mis-wiring the
    # channels), ours refuses
    bad = list(R.RELEASED_ARCH)
    bad[0] = -1
    try:
        R.ProxylessNetwork(bad)
        refused = False
    except ValueError:
        refused = True
    report("retrain: id -1 on layer 0 (no identity) refused", refused)
    allowed = [l for l, (i, o, s) in enumerate(R.layer_settings(1.0)) if R.skippable(i, o, s)]
    report("skippable layers are 1-3, 5-7, 9-11, 13-15, 17-19",
           allowed == [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19], str(allowed))


def official_importance(handle, attention_weights):
    """The official per-layer arrays (length 6 or 7) as one (21, 7) tensor, zeros where there is no identity."""
    return padded([torch.tensor(row, dtype=torch.float64) for row in handle(attention_weights)])


def padded(rows):
    out = torch.zeros(len(rows), R.IDENTITY + 1, dtype=torch.float64)
    for l, r in enumerate(rows):
        out[l, :len(r)] = r
    return out


def compare_step(label, off, ours, x, labels, official_loss, handle, tol, supernet, seed=0):
    """Loads ``off``'s weights into ``ours``, then one train-mode step and one eval-mode forward on both."""
    ours.load_state_dict(off.state_dict())
    n_class = ours.classifier[-1].out_features
    crit = official_loss(n_class, 0.1)
    worst = {}
    off.train()
    ours.train()
    torch.manual_seed(seed)
    if supernet:
        y_off, att = off(x, return_attention=True)
        imp_off = official_importance(handle, att)
    else:
        y_off = off(x)
    torch.manual_seed(seed)
    if supernet:
        y_ours, imp_ours = ours(x)
        worst["importance (train)"] = max_rel(imp_ours, imp_off)
    else:
        y_ours = ours(x)
    worst["logits (train)"] = max_rel(y_ours, y_off)
    l_off, l_ours = crit(y_off, labels), R.label_smoothing_ce(y_ours, labels)
    worst["label-smoothing loss"] = max_rel(l_ours, l_off)
    l_off.backward()
    l_ours.backward()
    po, pr = dict(off.named_parameters()), dict(ours.named_parameters())
    # Some gradients are zero up to rounding (a BN bias whose shift the next conv + train-mode BN removes): they
    # are compared against a millionth of the largest gradient instead of their own tiny scale.
    floor = 1e-6 * max(p.grad.abs().max().item() for p in po.values())
    worst["gradients"] = max(max_rel(pr[k].grad, po[k].grad, floor) for k in po)
    so, sr = off.state_dict(), ours.state_dict()
    worst["BN buffers"] = max(max_rel(sr[k], so[k]) for k in so if "running" in k or "num_batches" in k)
    off.eval()
    ours.eval()
    with torch.no_grad():
        if supernet:
            y_off, att = off(x, return_attention=True)
            y_ours, imp_ours = ours(x)
            worst["importance (eval)"] = max_rel(imp_ours, official_importance(handle, att))
        else:
            y_off, y_ours = off(x), ours(x)
        worst["logits (eval)"] = max_rel(y_ours, y_off)
    bad = {k: v for k, v in worst.items() if not v <= tol}
    report(label, not bad, ", ".join(f"{k} {v:.1e}" for k, v in worst.items()) + f" (tolerance {tol:.0e})")


def check_numerics(search, retrain, official_loss, handle):
    runs = [
        # (dtype, width, classes, input size, batch, tolerance)
        (torch.float64, 1.0, 10, 64, 2, 1e-8),
        (torch.float64, 0.1, 10, 64, 2, 1e-8),
        (torch.float64, 0.1, 10, 224, 2, 1e-8),
        (torch.float32, 0.1, 10, 64, 2, 1e-4),
    ]
    for dtype, w, nc, size, batch, tol in runs:
        torch.manual_seed(1)
        x = torch.randn(batch, 3, size, size, dtype=dtype)
        labels = torch.randint(0, nc, (batch,))
        tag = f"{str(dtype).split('.')[-1]} w={w} classes={nc} {size}px batch {batch}"
        off = search.AttSuperNetwork(n_class=nc, input_size=size, width_mult=w).to(dtype)
        randomize_bn(off)
        compare_step(f"supernet {tag}", off, R.ProxylessSupernet(nc, size, w).to(dtype), x, labels,
                     official_loss, handle, tol, True)
        archs = [("released", R.RELEASED_ARCH)]
        if size == 64:
            archs.append(("alternative", R.ALT_ARCH))
        for label, arch in archs:
            off = retrain.Network(arch, n_class=nc, input_size=size, width_mult=w).to(dtype)
            randomize_bn(off)
            compare_step(f"retrain {label} {tag} (same dropout mask)", off,
                         R.ProxylessNetwork(arch, nc, size, w).to(dtype), x, labels, official_loss, handle, tol,
                         False)


def check_fixtures(search, retrain, official_loss, handle, fixture_dir):
    """Replays the ``proxyless_supernet`` and ``proxyless_network`` fixtures on the official modules (float64, the
    fixture's parameters loaded by name, dropout off): every stored tensor must agree to float32 storage precision."""
    from safetensors.torch import load_file
    for case in ("proxyless_supernet", "proxyless_network"):
        path = os.path.join(fixture_dir, case + ".safetensors")
        if not os.path.exists(path):
            report(f"fixture {case}: replayed on the official code", False, f"{path} missing")
            continue
        f = load_file(path)
        supernet = case == "proxyless_supernet"
        if supernet:
            off = search.AttSuperNetwork(n_class=10, input_size=64, width_mult=0.1)
        else:
            off = retrain.Network(R.RELEASED_ARCH, n_class=10, input_size=64, width_mult=0.1)
            off.classifier[0].p = 0.0
        off = off.double()
        res = off.load_state_dict({k[2:]: v for k, v in f.items() if k.startswith("p.")}, strict=False)
        assert not res.unexpected_keys and all(k.endswith("num_batches_tracked") for k in res.missing_keys), res
        x, labels = f["x"].double(), f["labels"]
        worst = {}
        off.train()
        if supernet:
            y, att = off(x, return_attention=True)
            worst["importance"] = max_rel(official_importance(handle, att), f["importance"])
        else:
            y = off(x)
        loss = official_loss(10, 0.1)(y, labels)
        worst["logits"] = max_rel(y, f["y"])
        worst["loss"] = max_rel(loss.reshape(1), f["loss"])
        loss.backward()
        params = dict(off.named_parameters())
        floor = 1e-6 * max(p.grad.abs().max().item() for p in params.values())
        worst["gradients"] = max(max_rel(p.grad, f["g." + k], floor) for k, p in params.items())
        state = off.state_dict()
        worst["BN stats"] = max(max_rel(state[k[3:]], v) for k, v in f.items() if k.startswith("rs."))
        off.eval()
        with torch.no_grad():
            if supernet:
                y, att = off(x, return_attention=True)
                worst["eval importance"] = max_rel(official_importance(handle, att), f["importance_eval"])
            else:
                y = off(x)
        worst["eval logits"] = max_rel(y, f["y_eval"])
        ok = all(v <= 1e-6 for v in worst.values()) and len(params) == sum(k.startswith("g.") for k in f)
        report(f"fixture {case}: replayed on the official code (float64)", ok,
               ", ".join(f"{k} {v:.1e}" for k, v in worst.items()) + " (tolerance 1e-6: float32 storage)")


# ---------------------------------------------------------------------------

def load_luts(mirror, rev, lut_dir):
    luts = {}
    for w in ("0.9", "0.95", "1.0"):
        raw = git_show(mirror, rev, f"{SUB}/retrain_architecture/op_flops_dict_{w}.pkl")
        pkl = _NoGlobals(io.BytesIO(raw)).load()
        with open(os.path.join(lut_dir, f"proxyless_flops_lut_width{w}.json")) as fh:
            doc = json.load(fh)
        js = {key: {(e["inp"], e["oup"], e["h"], e["w"], e["stride"]): e["flops"] for e in rows}
              for key, rows in doc.items()}
        report(f"FLOPs table {w}: JSON copy equals the official pkl", js == pkl,
               f"{sum(len(v) for v in pkl.values())} entries")
        luts[float(w)] = pkl
    return luts


# Table value minus the model's count (spec 5.3 correction 2).
EXPECTED_TABLE_MINUS_MODEL = {
    (0.9, "PreProcessing"): 1_354_752, (0.9, "PostProcessing"): -3_635_076,
    (0.95, "PreProcessing"): 953_344, (0.95, "PostProcessing"): -1_921_832,
}


def formula(key, inp, oup, h, stride, width):
    """Our count for one table entry, for the model at ``width`` (the first block and the head as the model has
    them, not as the table generator built them)."""
    if key == "PreProcessing":
        ho = R._conv_out(h, 3, stride)
        return R.conv_flops(inp, oup, 3, 1, ho, ho) + R.mbconv_flops(
            oup, R.scaled(R.FIRST_BLOCK_CHANNELS, width), 3, 1, 1, ho, ho)
    if key == "PostProcessing":
        head = R.head_channels(width)
        return R.conv_flops(inp, head, 1, 1, h, h) + R.linear_flops(head, 1000)
    k, e = R.PROXYLESS_BLOCKS[R.PROXYLESS_BLOCK_KEYS.index(key)]
    return R.mbconv_flops(inp, oup, k, stride, e, h, h)


def check_flops(luts):
    for width, lut in sorted(luts.items()):
        blocks_off, pre_post = [], {}
        for key, entries in lut.items():
            for (inp, oup, h, w, stride), value in sorted(entries.items()):
                d = int(value) - formula(key, inp, oup, h, stride, width)
                if key in ("PreProcessing", "PostProcessing"):
                    pre_post[key] = (d, (inp, oup, h, w, stride), int(value))
                elif d:
                    blocks_off.append((key, (inp, oup, h, w, stride), d))
        n_blocks = sum(len(v) for k, v in lut.items() if k not in ("PreProcessing", "PostProcessing"))
        if width == 1.0:
            ok = not blocks_off and all(d == 0 for d, _, _ in pre_post.values())
            report("FLOPs table 1.0: every entry equals the formula", ok,
                   f"{n_blocks} block entries + PreProcessing {pre_post['PreProcessing'][2]:,} + PostProcessing "
                   f"{pre_post['PostProcessing'][2]:,}")
            continue
        # What the table generator built (flops_test_blocks.py): a PreProcessing whose e1 block ends in 24 channels
        # whatever the width, and a PostProcessing with int(1728 w) head channels; thop keeps counts in float32.
        stem = R.scaled(R.STEM_CHANNELS, width)
        gen_pre = R.conv_flops(3, stem, 3, 1, 112, 112) + R.mbconv_flops(stem, R.FIRST_BLOCK_CHANNELS, 3, 1, 1, 112, 112)
        last = R.layer_settings(width)[-1][1]
        head = R.scaled(R.HEAD_CHANNELS, width)
        gen_post = R.conv_flops(last, head, 1, 1, 7, 7) + R.linear_flops(head, 1000)
        for key, gen, why in (
                ("PreProcessing", gen_pre,
                 f"the generator's e1 block ends in 24 channels, the model's in {R.scaled(R.FIRST_BLOCK_CHANNELS, width)}"),
                ("PostProcessing", gen_post, f"the generator's head has {head} channels, the model's 1728")):
            d, entry, value = pre_post[key]
            rounding = value - gen
            ok = value == float(np.float32(gen)) and d == EXPECTED_TABLE_MINUS_MODEL[(width, key)]
            report(f"FLOPs table {width}: {key}{entry} table - model = {d:+,}", ok,
                   why + (f"; {rounding:+} of it is thop's float32 rounding" if rounding else "")
                   + f" (expected {EXPECTED_TABLE_MINUS_MODEL[(width, key)]:+,})")
        # thop stores every count in a float32 tensor: the off entries must be exactly the float32 rounding
        rounding = all(float(np.float32(formula(k, *e[:3], e[4], width))) == float(lut[k][e]) for k, e, _ in blocks_off)
        if blocks_off:
            report(f"FLOPs table {width}: {n_blocks - len(blocks_off)}/{n_blocks} block entries equal the formula, "
                   f"the others are float32 roundings of it", rounding,
                   "; ".join(f"{k}{e}: {d:+}" for k, e, d in blocks_off))
        else:
            report(f"FLOPs table {width}: all {n_blocks} block entries equal the formula", True)
    checks = [
        ("released arch", R.flops(R.RELEASED_ARCH), 660_857_816),
        ("alternative arch", R.flops(R.ALT_ARCH), 688_263_320),
    ]
    for label, got, want in checks:
        report(f"FLOPs {label} = {got:,}", got == want, f"expected {want:,}")
    lut = luts[1.0]
    for label, arch in (("released", R.RELEASED_ARCH), ("alternative", R.ALT_ARCH)):
        total = lut["PreProcessing"][(3, 40, 224, 224, 2)] + lut["PostProcessing"][(432, 1728, 7, 7, 1)]
        for (inp, oup, stride), (h, _), i in zip(R.layer_settings(1.0), _input_sizes(), arch):
            if i >= 0:
                total += lut[R.PROXYLESS_BLOCK_KEYS[i]][(inp, oup, h, h, stride)]
        report(f"FLOPs {label} arch by the official get_arch_flops rule on the 1.0 table = {int(total):,}",
               int(total) == R.flops(arch))
    sup = R.flops(None)
    report(f"FLOPs full supernet (all six candidates per layer) = {sup:,} ~ {sup / 1e6:.1f} M",
           round(sup / 1e5) == 39875, f"attention Linears would add {R.attention_flops():,}")


def _input_sizes(input_size=224):
    h = R._conv_out(input_size, 3, 2)
    out = []
    for _, _, stride in R.layer_settings(1.0):
        out.append((h, stride))
        h = R._conv_out(h, 3, stride)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirror", default="/work/.mirror/Sunzh1996+AGNAS/repo")
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--lut-dir", default="/work/shared/data/proxyless")
    ap.add_argument("--fixtures", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                       "crates", "agnas", "tests", "fixtures"))
    ap.add_argument("--skip-numerics", action="store_true", help="only structure, counts and FLOPs")
    args = ap.parse_args()
    torch.set_num_threads(1)

    search = import_set(args.mirror, args.rev, "attention_search",
                        ["config.py", "torch_blocks.py", "att_supernet.py"], "att_supernet")
    retrain = import_set(args.mirror, args.rev, "retrain_architecture",
                         ["config.py", "torch_blocks.py", "model.py"], "model")
    official_loss = extract_def(args.mirror, args.rev, f"{SUB}/attention_search/utils.py",
                                "CrossEntropyLabelSmooth", {"nn": nn, "torch": torch})
    handle = extract_def(args.mirror, args.rev, f"{SUB}/attention_search/compute_attention.py",
                         "handle_attention_weights", {"np": np, "torch": torch})
    ok_order = list(search.config.blocks_keys) == R.PROXYLESS_BLOCK_KEYS == list(retrain.config.blocks_keys)
    report("candidate order equals the official blocks_keys", ok_order, ", ".join(R.PROXYLESS_BLOCK_KEYS))

    check_structure(search, retrain)
    if not args.skip_numerics:
        check_numerics(search, retrain, official_loss, handle)
        check_fixtures(search, retrain, official_loss, handle, args.fixtures)
    check_flops(load_luts(args.mirror, args.rev, args.lut_dir))

    failed = [n for n, ok in RESULTS if not ok]
    print(f"\n{len(RESULTS) - len(failed)}/{len(RESULTS)} checks passed")
    if failed:
        print("FAIL:\n  " + "\n  ".join(failed))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
