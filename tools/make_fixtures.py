#!/usr/bin/env python3
"""Generate the numerical parity fixtures for the Rust AGNAS crate.

Usage (from the repository root):

    /root/.cache/agnas/torch-2.11.0/bin/python tools/make_fixtures.py [--out DIR] [--only CASE ...]

Writes one ``<case>.safetensors`` per case into ``crates/agnas/tests/fixtures``
(see the README written next to them for the key conventions), plus
``darts_network_names.json`` (case name ``darts_network_names``): the ordered
state_dict keys and shapes of the full-size DARTS-space networks, and
``proxyless_names.json`` (case ``proxyless_names``), the same for the full-size
ProxylessNAS-space supernet and retrain networks.
"""

import argparse
import copy
import json
import os
import sys
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agnas_ref as R  # noqa: E402
import proxyless_ref as P  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "crates", "agnas", "tests", "fixtures")


def _randn(*shape, scale=1.0):
    return torch.randn(*shape) * scale


# The benchmark's best CIFAR-10 cell (index 6111), and one with an all-`none` node feeding a conv.
NB201_6111 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
NB201_ZERO_NODE = "|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|"

# Each case: name -> (builder, description, input shape, kind, input scale)
#   kind "module": y = module(x), gy/gx stored
#   kind "mixed_op": (y, importance) = module(x)
#   kind "supernet": (logits, importance) = module(x); loss = CE(logits, labels)
#   kind "network": train mode (logits, aux) = module(x);
#                   loss = CE(logits, labels) + AUX_WEIGHT * CE(aux, labels)
CASES = [
    ("conv_dw_dil",
     lambda: nn.Conv2d(8, 8, 3, stride=1, padding=2, dilation=2, groups=8, bias=False),
     "nn.Conv2d(in_channels=8, out_channels=8, kernel_size=3, stride=1, padding=2, dilation=2, groups=8, bias=False)",
     (2, 8, 9, 9), "module", 1.0),
    ("conv_grouped_bias",
     lambda: nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=4, bias=True),
     "nn.Conv2d(in_channels=8, out_channels=12, kernel_size=3, stride=2, padding=1, dilation=1, groups=4, bias=True)",
     (2, 8, 9, 9), "module", 1.0),
    ("bn_affine",
     lambda: nn.BatchNorm2d(6),
     "nn.BatchNorm2d(num_features=6, eps=1e-5, momentum=0.1, affine=True)",
     (4, 6, 5, 5), "module", 1.0),
    ("bn_noaffine",
     lambda: nn.BatchNorm2d(6, affine=False),
     "nn.BatchNorm2d(num_features=6, eps=1e-5, momentum=0.1, affine=False)",
     (4, 6, 5, 5), "module", 1.0),
    ("relu6",
     lambda: nn.ReLU6(),
     "nn.ReLU6(); x = 4*randn",
     (2, 3, 4, 4), "module", 4.0),
    ("avg_pool_s1",
     lambda: R.avg_pool(1),
     "nn.AvgPool2d(kernel_size=3, stride=1, padding=1, count_include_pad=False)",
     (2, 4, 7, 7), "module", 1.0),
    ("avg_pool_s2",
     lambda: R.avg_pool(2),
     "nn.AvgPool2d(kernel_size=3, stride=2, padding=1, count_include_pad=False)",
     (2, 4, 7, 7), "module", 1.0),
    ("max_pool_s1",
     lambda: R.max_pool(1),
     "nn.MaxPool2d(kernel_size=3, stride=1, padding=1)",
     (2, 4, 7, 7), "module", 1.0),
    ("max_pool_s2",
     lambda: R.max_pool(2),
     "nn.MaxPool2d(kernel_size=3, stride=2, padding=1)",
     (2, 4, 7, 7), "module", 1.0),
    ("zero_s1",
     lambda: R.Zero(1),
     "Zero(stride=1)",
     (2, 4, 6, 6), "module", 1.0),
    ("zero_s2",
     lambda: R.Zero(2),
     "Zero(stride=2)",
     (2, 4, 6, 6), "module", 1.0),
    ("identity",
     lambda: R.Identity(),
     "Identity()",
     (2, 4, 6, 6), "module", 1.0),
    ("factorized_reduce",
     lambda: R.FactorizedReduce(8, 8, affine=False),
     "FactorizedReduce(C_in=8, C_out=8, affine=False)",
     (2, 8, 8, 8), "module", 1.0),
    ("relu_conv_bn_1x1",
     lambda: R.ReLUConvBN(8, 8, 1, 1, 0, affine=False),
     "ReLUConvBN(C_in=8, C_out=8, kernel_size=1, stride=1, padding=0, dilation=1, affine=False)",
     (2, 8, 8, 8), "module", 1.0),
    ("relu_conv_bn_3x3_affine",
     lambda: R.ReLUConvBN(8, 8, 3, 1, 1, affine=True),
     "ReLUConvBN(C_in=8, C_out=8, kernel_size=3, stride=1, padding=1, dilation=1, affine=True)",
     (2, 8, 8, 8), "module", 1.0),
    ("sep_conv_3x3_s1",
     lambda: R.SepConv(8, 8, 3, 1, 1, affine=False),
     "SepConv(C_in=8, C_out=8, kernel_size=3, stride=1, padding=1, affine=False)",
     (2, 8, 8, 8), "module", 1.0),
    ("sep_conv_3x3_s2",
     lambda: R.SepConv(8, 8, 3, 2, 1, affine=False),
     "SepConv(C_in=8, C_out=8, kernel_size=3, stride=2, padding=1, affine=False)",
     (2, 8, 8, 8), "module", 1.0),
    ("sep_conv_5x5_s1",
     lambda: R.SepConv(8, 8, 5, 1, 2, affine=False),
     "SepConv(C_in=8, C_out=8, kernel_size=5, stride=1, padding=2, affine=False)",
     (2, 8, 8, 8), "module", 1.0),
    ("dil_conv_3x3_s1",
     lambda: R.DilConv(8, 8, 3, 1, 2, 2, affine=False),
     "DilConv(C_in=8, C_out=8, kernel_size=3, stride=1, padding=2, dilation=2, affine=False)",
     (2, 8, 8, 8), "module", 1.0),
    ("dil_conv_5x5_s2",
     lambda: R.DilConv(8, 8, 5, 2, 4, 2, affine=False),
     "DilConv(C_in=8, C_out=8, kernel_size=5, stride=2, padding=4, dilation=2, affine=False)",
     (2, 8, 8, 8), "module", 1.0),
    ("resnet_block",
     lambda: R.ResNetBasicBlock(8, 16, 2),
     "ResNetBasicBlock(inplanes=8, planes=16, stride=2)",
     (2, 8, 8, 8), "module", 1.0),
    ("se_attention",
     lambda: R.SEAttention(40, 8),
     "SEAttention(channels=40, ratio=8); y = gates (B, channels)",
     (3, 40, 5, 5), "module", 1.0),
    ("mixed_op_nb201",
     lambda: R.MixedOp(8, 8),
     "MixedOp(C=8, ratio=8) over NB201_OPS=" + ",".join(R.NB201_OPS),
     (3, 8, 6, 6), "mixed_op", 1.0),
    ("nb201_supernet",
     lambda: R.NB201Supernet(C=8, N=1, num_classes=10, ratio=8),
     "NB201Supernet(C=8, N=1, num_classes=10, ratio=8)",
     (4, 3, 16, 16), "supernet", 1.0),
    ("mixed_op_darts_s1",
     lambda: R.DartsMixedOp(4, 1, 8),
     "DartsMixedOp(C=4, stride=1, ratio=8) over DARTS_OPS=" + ",".join(R.DARTS_OPS)
     + "; pools followed by BatchNorm2d(C, affine=False)",
     (2, 4, 8, 8), "mixed_op", 1.0),
    ("mixed_op_darts_s2",
     lambda: R.DartsMixedOp(4, 2, 8),
     "DartsMixedOp(C=4, stride=2, ratio=8) over DARTS_OPS=" + ",".join(R.DARTS_OPS)
     + "; pools followed by BatchNorm2d(C, affine=False)",
     (2, 4, 8, 8), "mixed_op", 1.0),
    ("darts_supernet",
     lambda: R.DartsSupernet(C=2, num_classes=10, layers=5),
     "DartsSupernet(C=2, num_classes=10, layers=5, steps=4, multiplier=4, stem_multiplier=3, "
     "ratio=8); reduction cells 1 and 3",
     (2, 3, 16, 16), "supernet", 1.0),
    ("nb201_network_6111",
     lambda: R.NB201Network(8, 1, R.nb201_arch_ops(NB201_6111), 10),
     "NB201Network(C=8, N=1, arch=" + NB201_6111 + ", num_classes=10) (the benchmark's TinyNetwork); "
     "loss = CE(logits)",
     (2, 3, 32, 32), "network", 1.0),
    ("nb201_network_none",
     lambda: R.NB201Network(8, 1, R.nb201_arch_ops(NB201_ZERO_NODE), 10),
     "NB201Network(C=8, N=1, arch=" + NB201_ZERO_NODE + ", num_classes=10); node 1 is all-none; "
     "loss = CE(logits)",
     (2, 3, 32, 32), "network", 1.0),
    ("darts_network_agnas",
     lambda: R.NetworkCIFAR(4, 10, 5, True, R.AGNAS, drop_path_prob=0.0),
     "NetworkCIFAR(C=4, num_classes=10, layers=5, auxiliary=True, genotype=AGNAS, "
     "drop_path_prob=0.0); loss = CE(logits) + 0.4*CE(aux)",
     (2, 3, 32, 32), "network", 1.0),
    ("darts_network_darts_v2",
     lambda: R.NetworkCIFAR(4, 10, 5, False, R.DARTS_V2, drop_path_prob=0.0),
     "NetworkCIFAR(C=4, num_classes=10, layers=5, auxiliary=False, genotype=DARTS_V2, "
     "drop_path_prob=0.0); loss = CE(logits)",
     (2, 3, 32, 32), "network", 1.0),
]

# Weight of the auxiliary-head loss in the "network" cases (official train.py default).
AUX_WEIGHT = 0.4

# Names-and-shapes file for the full-size DARTS-space networks (no tensors).
NAMES_CASE = "darts_network_names"

# ProxylessNAS space. Parameters and inputs are drawn in float32 as above; the forward/backward then runs in float64
# and the results are stored as float32 (see build_proxyless_case).
#   kind "module": y = module(x); gy/gx stored
#   kind "block": (y, importance) = module(x); gy/gx stored; eval-mode importance too
#   kind "supernet": (logits, importance) = module(x); loss = label-smoothing CE (eps 0.1); eval-mode importance too
#   kind "network": logits = module(x) (built with Dropout(p=0)); loss = label-smoothing CE (eps 0.1)
PROXYLESS_WIDTH = 0.1
PROXYLESS_INPUT = (2, 3, 64, 64)
PROXYLESS_CASES = [
    ("proxyless_mbconv_k3e3_s2",
     lambda: P.MBConv(8, 12, 3, 2, 3),
     "MBConv(inp=8, oup=12, kernel=3, stride=2, expand=3) (no residual)",
     (2, 8, 9, 9), "module"),
    ("proxyless_mbconv_k7e6_s1",
     lambda: P.MBConv(8, 8, 7, 1, 6),
     "MBConv(inp=8, oup=8, kernel=7, stride=1, expand=6) (with residual)",
     (2, 8, 8, 8), "module"),
    ("proxyless_mbconv_k3e1",
     lambda: P.MBConv(8, 6, 3, 1, 1),
     "MBConv(inp=8, oup=6, kernel=3, stride=1, expand=1) (conv.{0,1,3,4}, no residual)",
     (2, 8, 8, 8), "module"),
    ("proxyless_block_identity",
     lambda: P.SearchBlock(8, 8, 1),
     "SearchBlock(inp=8, oup=8, stride=1): 6 MBConvs + identity, attention 56 -> 3 -> 56",
     (2, 8, 8, 8), "block"),
    ("proxyless_block_s2",
     lambda: P.SearchBlock(8, 12, 2),
     "SearchBlock(inp=8, oup=12, stride=2): 6 MBConvs, attention 72 -> 4 -> 72",
     (2, 8, 9, 9), "block"),
    ("proxyless_supernet",
     lambda: P.ProxylessSupernet(n_class=10, input_size=64, width_mult=PROXYLESS_WIDTH),
     f"ProxylessSupernet(n_class=10, input_size=64, width_mult={PROXYLESS_WIDTH}); "
     "loss = label-smoothing CE (eps 0.1)",
     PROXYLESS_INPUT, "supernet"),
    ("proxyless_network",
     lambda: P.ProxylessNetwork(P.RELEASED_ARCH, n_class=10, input_size=64, width_mult=PROXYLESS_WIDTH,
                                dropout=0.0),
     "ProxylessNetwork(arch=" + " ".join(map(str, P.RELEASED_ARCH)) + f", n_class=10, input_size=64, "
     f"width_mult={PROXYLESS_WIDTH}, dropout=0.0); loss = label-smoothing CE (eps 0.1)",
     PROXYLESS_INPUT, "network"),
]
PROXYLESS_NAMES_CASE = "proxyless_names"
# A gradient whose float64 value is below this fraction of the case's largest gradient is listed in the
# ``zero_grads`` metadata: it is zero analytically (or exactly, behind a dead ReLU) and rounding noise in float32.
ZERO_GRAD_FRACTION = 1e-10


_DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def write_safetensors(path, tensors, metadata):
    """Byte-deterministic safetensors writer (sorted keys, sorted metadata).

    ``safetensors.torch.save_file`` serialises the metadata map in a random
    order, which would make every regeneration show up as a change.
    """
    header = {"__metadata__": {k: metadata[k] for k in sorted(metadata)}}
    blobs = []
    offset = 0
    for key in sorted(tensors):
        v = tensors[key].detach().cpu().contiguous()
        if v.dtype not in _DTYPES:
            raise TypeError(f"{key}: unsupported dtype {v.dtype}")
        data = v.numpy().astype(v.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[key] = {"dtype": _DTYPES[v.dtype], "shape": list(v.shape),
                       "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(hbytes).to_bytes(8, "little"))
        f.write(hbytes)
        for data in blobs:
            f.write(data)
    # round-trip check with the official reader
    back = load_file(path)
    assert back.keys() == tensors.keys()
    for key, v in tensors.items():
        assert torch.equal(back[key], v), key


def case_seed(name):
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def is_bn(m):
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def randomize_bn(model):
    """Random affine params and running stats so that all of them are exercised."""
    with torch.no_grad():
        for m in model.modules():
            if not is_bn(m):
                continue
            if m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.copy_(torch.randn_like(m.bias) * 0.1)
            if m.track_running_stats:
                m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.1)
                m.running_var.uniform_(0.5, 1.5)


def t(v):
    return v.detach().to(torch.float32).contiguous().clone() if v.is_floating_point() \
        else v.detach().contiguous().clone()


def build_case(name, builder, desc, shape, kind, scale):
    torch.manual_seed(case_seed(name))
    model = builder()
    randomize_bn(model)
    model.train()

    out = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        out["p." + k] = t(v)

    x = _randn(*shape, scale=scale)
    out["x"] = t(x)
    has_bn = any(is_bn(m) for m in model.modules())

    if kind == "supernet":
        labels = torch.randint(0, 10, (shape[0],), dtype=torch.int64)
        out["labels"] = labels.clone()
        logits, importance = model(x)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        out["y"] = t(logits)
        out["loss"] = t(loss.reshape(1))
        out["importance"] = t(importance)
    elif kind == "network":
        labels = torch.randint(0, 10, (shape[0],), dtype=torch.int64)
        out["labels"] = labels.clone()
        logits, logits_aux = model(x)
        loss = F.cross_entropy(logits, labels)
        if logits_aux is not None:
            loss = loss + AUX_WEIGHT * F.cross_entropy(logits_aux, labels)
            out["y_aux"] = t(logits_aux)
        loss.backward()
        out["y"] = t(logits)
        out["loss"] = t(loss.reshape(1))
    else:
        xg = x.clone().requires_grad_(True)
        res = model(xg)
        if kind == "mixed_op":
            y, importance = res
            out["importance"] = t(importance)
        else:
            y = res
        gy = torch.randn_like(y)
        (y * gy).sum().backward()
        out["y"] = t(y)
        out["gy"] = t(gy)
        out["gx"] = t(xg.grad)

    for k, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name}: no gradient for {k}"
            out["g." + k] = t(p.grad)

    for mod_name, m in model.named_modules():
        if is_bn(m) and m.track_running_stats:
            prefix = mod_name + "." if mod_name else ""
            out["rs." + prefix + "running_mean"] = t(m.running_mean)
            out["rs." + prefix + "running_var"] = t(m.running_var)

    if has_bn:
        model.eval()
        with torch.no_grad():
            res = model(x)
        y_eval = res[0] if isinstance(res, tuple) else res
        out["y_eval"] = t(y_eval)

    meta = {"case": name, "module": desc, "seed": str(case_seed(name)),
            "torch": torch.__version__}
    return out, meta


def calibrate_bn(model, shape):
    """Running statistics of the scale the activations really have: every BN's statistics of one train-mode forward
    of another random batch (``shape``), then perturbed (mean + 0.1 std randn, variance times U(0.5, 1.5)) so that
    they differ from the fixture batch's own. (With ``randomize_bn``'s unit-scale statistics, the deep ProxylessNAS
    networks lose every trace of the input in eval mode: the two samples' eval logits agree to 1e-7.)"""
    probe = copy.deepcopy(model).double()  # float64, like the fixture's own forward
    probe_bns = [m for m in probe.modules() if is_bn(m)]
    with torch.no_grad():
        for m in probe_bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly its statistics
        probe.train()
        probe(torch.randn(*shape).double())
        for m, calibrated in zip([m for m in model.modules() if is_bn(m)], probe_bns):
            m.running_mean.copy_(calibrated.running_mean)
            m.running_var.copy_(calibrated.running_var)
            m.running_mean.add_(torch.randn_like(m.running_mean) * 0.1 * m.running_var.sqrt())
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.5, 1.5))


def revive_attention(model, x):
    """Negates the ``fc.0`` row of every attention hidden unit whose ReLU is off for the whole batch of the
    train-mode forward on ``x`` (layer by layer, in forward order), so that every attention weight gets a gradient.
    With hidden widths of 1 to 4 (n // 16 at width 0.1) dead units are otherwise common."""
    names = [n for n, m in model.named_modules() if isinstance(m, P.MacroAttention)]
    flipped = []
    for name in names:
        probe = copy.deepcopy(model).double().train()
        seen = {}
        probe.get_submodule(name).fc[0].register_forward_hook(lambda m, i, o: seen.setdefault("pre", o))
        with torch.no_grad():
            probe(x.double())
        dead = (seen["pre"] <= 0).all(0)
        if dead.any():
            with torch.no_grad():
                model.get_submodule(name).fc[0].weight[dead] *= -1
            flipped.append(f"{name}:{int(dead.sum())}")
    return flipped


def build_proxyless_case(name, builder, desc, shape, kind):
    """A ProxylessNAS-space case. Drawn like ``build_case`` (float32 parameters and input, random BN), then run in
    float64 (exact from the float32 values) and stored as float32: these networks are deep enough that float32
    results differ from exact ones by up to ~2e-4 relative in a few gradients, and some gradients are zero
    analytically (listed in the ``zero_grads`` metadata)."""
    torch.manual_seed(case_seed(name))
    model = builder()
    randomize_bn(model)
    if kind in ("supernet", "network"):
        calibrate_bn(model, shape)
    x = torch.randn(*shape)
    flipped = revive_attention(model, x) if kind in ("supernet", "block") else []
    model.train()

    out = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        out["p." + k] = t(v)
    out["x"] = t(x)
    labels = None
    if kind in ("supernet", "network"):
        labels = torch.randint(0, 10, (shape[0],), dtype=torch.int64)
        out["labels"] = labels.clone()

    model = copy.deepcopy(model).double()
    x64 = x.double()
    if kind in ("supernet", "network"):
        res = model(x64)
        logits, importance = res if kind == "supernet" else (res, None)
        loss = P.label_smoothing_ce(logits, labels, 0.1)
        loss.backward()
        out["y"] = t(logits)
        out["loss"] = t(loss.reshape(1))
        if importance is not None:
            out["importance"] = t(importance)
    else:
        xg = x64.clone().requires_grad_(True)
        res = model(xg)
        y, importance = res if kind == "block" else (res, None)
        gy = torch.randn(y.shape).double()
        (y * gy).sum().backward()
        out["y"] = t(y)
        out["gy"] = t(gy)
        out["gx"] = t(xg.grad)
        if importance is not None:
            out["importance"] = t(importance)

    grads = {}
    for k, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {k}"
        grads[k] = p.grad
        out["g." + k] = t(p.grad)
    largest = max(g.abs().max().item() for g in grads.values())
    zero = sorted(k for k, g in grads.items() if g.abs().max().item() <= ZERO_GRAD_FRACTION * largest)

    for mod_name, m in model.named_modules():
        if is_bn(m):
            prefix = mod_name + "." if mod_name else ""
            out["rs." + prefix + "running_mean"] = t(m.running_mean)
            out["rs." + prefix + "running_var"] = t(m.running_var)

    model.eval()
    with torch.no_grad():
        res = model(x64)
    if isinstance(res, tuple):
        out["y_eval"] = t(res[0])
        out["importance_eval"] = t(res[1])
    else:
        out["y_eval"] = t(res)

    meta = {"case": name, "module": desc, "seed": str(case_seed(name)), "torch": torch.__version__,
            "compute": "float64 from the float32 parameters and input; stored as float32",
            "zero_grads": ",".join(zero), "attention_rows_negated": ",".join(flipped)}
    return out, meta


def _names_entry(model, desc, count):
    entry = {"module": desc}
    entry.update(count)
    entry["state_dict"] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    return entry


def build_names():
    """Ordered ``[state_dict key, shape]`` lists of the full-size DARTS-space models."""
    torch.manual_seed(case_seed(NAMES_CASE))
    doc = {"torch": torch.__version__}
    for key, gname in (("agnas", "AGNAS"), ("darts_v2", "DARTS_V2")):
        m = R.NetworkCIFAR(36, 10, 20, True, getattr(R, gname))
        total = sum(p.numel() for p in m.parameters())
        doc[key] = _names_entry(
            m, f"NetworkCIFAR(C=36, num_classes=10, layers=20, auxiliary=True, genotype={gname})",
            {"params_excluding_aux": R.count_params(m), "params_total": total})
    m = R.DartsSupernet(C=16, num_classes=10, layers=8)
    doc["supernet"] = _names_entry(
        m, "DartsSupernet(C=16, num_classes=10, layers=8, steps=4, multiplier=4, "
           "stem_multiplier=3, ratio=8)",
        {"params": sum(p.numel() for p in m.parameters())})
    return doc


def build_proxyless_names():
    """Ordered ``[state_dict key, shape]`` lists of the full-size ProxylessNAS-space models (width 1.0, 1000
    classes), with parameter counts and table FLOPs."""
    torch.manual_seed(case_seed(PROXYLESS_NAMES_CASE))
    doc = {"torch": torch.__version__}
    m = P.ProxylessSupernet(n_class=1000, input_size=224, width_mult=1.0)
    doc["supernet"] = _names_entry(
        m, "ProxylessSupernet(n_class=1000, input_size=224, width_mult=1.0)",
        {"params": P.count_params(m), "flops": P.flops(None)})
    for key, arch in (("released", P.RELEASED_ARCH), ("alternative", P.ALT_ARCH)):
        ids = " ".join(map(str, arch))
        m = P.ProxylessNetwork(arch, n_class=1000, input_size=224, width_mult=1.0)
        doc[key] = _names_entry(
            m, f"ProxylessNetwork(arch={ids}, n_class=1000, input_size=224, width_mult=1.0)",
            {"arch": ids, "params": P.count_params(m), "flops": P.flops(arch)})
    return doc


def write_names_json(path, doc):
    """Compact, deterministic JSON: one line per state_dict entry."""
    dump = lambda v: json.dumps(v, separators=(",", ":"))  # noqa: E731
    lines = ["{"]
    models = [k for k in doc if isinstance(doc[k], dict)]
    lines.append(f'"torch":{dump(doc["torch"])},')
    for mi, mk in enumerate(models):
        entry = doc[mk]
        lines.append(f"{dump(mk)}:{{")
        for k, v in entry.items():
            if k != "state_dict":
                lines.append(f"{dump(k)}:{dump(v)},")
        lines.append('"state_dict":[')
        rows = entry["state_dict"]
        for i, row in enumerate(rows):
            lines.append(dump(row) + ("," if i + 1 < len(rows) else ""))
        lines.append("]}" + ("," if mi + 1 < len(models) else ""))
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == doc
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", default=None, help="case names to (re)generate")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    os.makedirs(args.out, exist_ok=True)

    names = {c[0] for c in CASES} | {c[0] for c in PROXYLESS_CASES} | {NAMES_CASE, PROXYLESS_NAMES_CASE}
    if args.only:
        unknown = [n for n in args.only if n not in names]
        if unknown:
            sys.exit(f"unknown case(s): {unknown}; known: {sorted(names)}")

    for name, builder, desc, shape, kind, scale in CASES:
        if args.only and name not in args.only:
            continue
        tensors, meta = build_case(name, builder, desc, shape, kind, scale)
        path = os.path.join(args.out, name + ".safetensors")
        write_safetensors(path, tensors, meta)
        os.chmod(path, 0o644)
        print(f"{name}: {len(tensors)} tensors, {os.path.getsize(path)} bytes -> "
              f"{os.path.relpath(path, REPO_ROOT)}")

    for name, builder, desc, shape, kind in PROXYLESS_CASES:
        if args.only and name not in args.only:
            continue
        tensors, meta = build_proxyless_case(name, builder, desc, shape, kind)
        path = os.path.join(args.out, name + ".safetensors")
        write_safetensors(path, tensors, meta)
        os.chmod(path, 0o644)
        print(f"{name}: {len(tensors)} tensors, {os.path.getsize(path)} bytes -> "
              f"{os.path.relpath(path, REPO_ROOT)}")

    for case, build in ((NAMES_CASE, build_names), (PROXYLESS_NAMES_CASE, build_proxyless_names)):
        if not args.only or case in args.only:
            path = os.path.join(args.out, case + ".json")
            write_names_json(path, build())
            os.chmod(path, 0o644)
            print(f"{case}: {os.path.getsize(path)} bytes -> {os.path.relpath(path, REPO_ROOT)}")


if __name__ == "__main__":
    main()
