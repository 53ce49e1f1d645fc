"""PyTorch reference modules for the Rust AGNAS implementation.

Module and attribute names are chosen so that ``state_dict`` keys match the
parameter names used on the Rust side.  Everything here is a plain,
self-contained re-implementation used to generate test fixtures and to
benchmark the reference training step.
"""

from collections import namedtuple

import torch
import torch.nn as nn
import torch.nn.functional as F

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]

# (to_node, from_node) for the six edges of a NAS-Bench-201 cell, in order.
NB201_EDGES = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]


class ReLUConvBN(nn.Module):
    def __init__(self, C_in, C_out, k, stride, padding, dilation=1, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(C_in, C_out, k, stride, padding, dilation, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    def __init__(self, C_in, C_out, k, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(C_in, C_in, k, stride, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(),
            nn.Conv2d(C_in, C_in, k, 1, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    def __init__(self, C_in, C_out, k, stride, padding, dilation, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(C_in, C_in, k, stride, padding, dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):
    def __init__(self, C_in, C_out, affine=True):
        super().__init__()
        assert C_out % 2 == 0, "FactorizedReduce needs an even C_out"
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, 2, 0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, 2, 0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        r = F.relu(x)
        return self.bn(torch.cat([self.conv_1(r), self.conv_2(r[:, :, 1:, 1:])], 1))


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        s = self.stride
        return x[:, :, ::s, ::s].mul(0.0)


class Identity(nn.Module):
    def forward(self, x):
        return x


def avg_pool(stride):
    return nn.AvgPool2d(3, stride, 1, count_include_pad=False)


def max_pool(stride):
    return nn.MaxPool2d(3, stride, 1)


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201 reduction block."""

    def __init__(self, inplanes, planes, stride=2):
        super().__init__()
        self.conv_a = ReLUConvBN(inplanes, planes, 3, stride, 1, affine=True)
        self.conv_b = ReLUConvBN(planes, planes, 3, 1, 1, affine=True)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(2, 2, 0),
            nn.Conv2d(inplanes, planes, 1, 1, 0, bias=False),
        )

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class SEAttention(nn.Module):
    """Squeeze-and-excitation style attention; forward returns the gates (B, channels)."""

    def __init__(self, channels, ratio=8):
        super().__init__()
        hidden = channels // ratio
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, X):
        return self.fc(X.mean((2, 3)))


def nb201_op(name, C, affine=False):
    """A stride-1 NB201 op; the supernet's convs have a plain BN, the evaluation network's an affine one."""
    if name == "none":
        return Zero(1)
    if name == "skip_connect":
        return Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(C, C, 1, 1, 0, affine=affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(C, C, 3, 1, 1, affine=affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {name!r}")


def squeeze(x):
    """Global average pooling as a sum and a division of the small result, so that the backward broadcasts the
    gradient instead of writing a full-size one (``mean``'s backward divides an expanded full-size gradient)."""
    return x.sum((2, 3)) / (x.shape[2] * x.shape[3])


class Node:
    """A cell node as the "shared" style reads it: what depends only on the node (its ReLU, the parameter-free
    candidates and their squeezes) is computed once for all of the node's outgoing edges."""

    def __init__(self, x):
        self.x = x
        self._relu = None
        self._shared = {}

    def relu(self):
        if self._relu is None:
            self._relu = F.relu(self.x)
        return self._relu

    def shared(self, key, fn):
        if key not in self._shared:
            out = fn(self.x)
            self._shared[key] = (out, squeeze(out))
        return self._shared[key]


def _pool_key(pool):
    return (type(pool).__name__, pool.stride)


def _shared_plan(op):
    """How the shared style runs one candidate (see ``AttentionMixedOp.accumulate``)."""
    if isinstance(op, Zero):
        return ("zero",)
    if isinstance(op, Identity):
        return ("shared", "identity", lambda x: x)
    if isinstance(op, (nn.AvgPool2d, nn.MaxPool2d)):
        return ("shared", _pool_key(op), op)
    if isinstance(op, nn.Sequential) and isinstance(op[0], (nn.AvgPool2d, nn.MaxPool2d)):
        return ("on_shared", _pool_key(op[0]), op[0], op[1])
    if isinstance(op, DilConv) and op.op[1].stride == (2, 2) and op.op[1].dilation == (2, 2):
        # as agnas's DilConv: a stride-2, dilation-2 conv reads only the even pixels, so it is an undilated
        # stride-1 conv of them
        dw = op.op[1]
        pad = (dw.kernel_size[0] - 1) // 2
        return ("relu", lambda r, dw=dw, rest=op.op[2:], pad=pad: rest(
            F.conv2d(r[:, :, ::2, ::2], dw.weight, None, 1, pad, 1, dw.groups)))
    if isinstance(op, (ReLUConvBN, SepConv, DilConv)):
        return ("relu", op.op[1:])
    if isinstance(op, FactorizedReduce):
        return ("relu", lambda r, m=op: m.bn(torch.cat([m.conv_1(r), m.conv_2(r[:, :, 1:, 1:])], 1)))
    raise TypeError(f"no shared-style plan for {type(op).__name__}")


class AttentionMixedOp(nn.Module):
    """Attention-guided mixed edge over an arbitrary list of candidate ops.

    Every op maps ``(B, C, H, W)`` to ``(B, C, H', W')``.  The outputs are
    concatenated along channels (op ``k`` owns channels ``k*C .. (k+1)*C``), an
    SE attention over the ``K*C`` channels produces the gates, and the edge
    output is the sum over ops of the gated op outputs.  The per-op importance
    is the sum of that op's gates over the batch and its channels, shape (K,).

    ``official=False`` (the "fast" style): weighted sum of the op outputs with
    the matching channel slice of the gates, importance computed on device.

    ``official=True``: mirrors the data flow of the original implementation:
    concatenate, multiply by the gates, sum the channel slices, and read each
    op's importance back to the host with ``.item()`` (one sync per op).
    ``shared`` (set by ``set_style``): the algorithm of the Rust fast path written in PyTorch; see ``accumulate``.
    All styles have identical parameters and produce the same numbers.
    """

    def __init__(self, ops, C, ratio=8, official=False):
        super().__init__()
        self.C = C
        self.official = official
        self.shared = False
        self._ops = nn.ModuleList(ops)
        self.attention = SEAttention(len(self._ops) * C, ratio)
        self._plans = [_shared_plan(op) for op in self._ops]

    def forward(self, x):
        if self.shared:
            return self.accumulate(Node(x), None)
        if self.official:
            return self._forward_official(x)
        return self._forward_fast(x)

    def accumulate(self, node, acc):
        """Adds the gated sum of the candidates on ``node`` (a ``Node``) into ``acc`` in place (or starts it);
        returns (acc, importance). No concatenation, no work for ``none``, ReLU/pools/squeezes shared per node."""
        outs, squeezes = [], []
        for plan in self._plans:
            if plan[0] == "zero":
                out, sq = None, None
            elif plan[0] == "shared":
                out, sq = node.shared(plan[1], plan[2])
            elif plan[0] == "on_shared":
                out = plan[3](node.shared(plan[1], plan[2])[0])
                sq = squeeze(out)
            else:
                out = plan[1](node.relu())
                sq = squeeze(out)
            outs.append(out)
            squeezes.append(sq)
        B, C, K = node.x.shape[0], self.C, len(self._plans)
        zero = node.x.new_zeros(B, C)
        gates = self.attention.fc(torch.cat([zero if sq is None else sq for sq in squeezes], 1))
        g = gates.view(B, K, C)
        for k, out in enumerate(outs):
            if out is None:
                continue
            gk = g[:, k, :, None, None]
            if acc is None:
                acc = out * gk
            else:
                acc.addcmul_(out, gk)
        return acc, g.detach().sum((0, 2))

    def _forward_fast(self, x):
        C = self.C
        K = len(self._ops)
        outs = [op(x) for op in self._ops]
        gates = self.attention(torch.cat(outs, 1))  # (B, K*C)
        out = None
        for k in range(K):
            term = outs[k] * gates[:, k * C:(k + 1) * C, None, None]
            out = term if out is None else out + term
        B = gates.shape[0]
        importance = gates.detach().view(B, K, C).sum((0, 2))
        return out, importance

    def _forward_official(self, x):
        C = self.C
        K = len(self._ops)
        X = torch.cat([op(x) for op in self._ops], 1)
        gates = self.attention(X)
        Y = X * gates[:, :, None, None]
        out = None
        for k in range(K):
            part = Y[:, k * C:(k + 1) * C]
            out = part if out is None else out + part
        g = gates.detach()
        vals = [g[:, k * C:(k + 1) * C].sum().item() for k in range(K)]
        importance = torch.tensor(vals, dtype=gates.dtype)
        return out, importance


class MixedOp(AttentionMixedOp):
    """NAS-Bench-201 attention mixed edge over ``NB201_OPS`` (stride 1)."""

    def __init__(self, C, ratio=8, official=False):
        super().__init__([nb201_op(name, C) for name in NB201_OPS], C, ratio, official)


class NB201SearchCell(nn.Module):
    def __init__(self, C, ratio=8, official=False):
        super().__init__()
        self.edges = nn.ModuleList([MixedOp(C, ratio, official) for _ in NB201_EDGES])

    def forward(self, x):
        if self.edges[0].shared:
            return self._forward_shared(x)
        nodes = [x]
        imps = [None] * len(NB201_EDGES)
        for to in range(1, 4):
            acc = None
            for e, (t, f) in enumerate(NB201_EDGES):
                if t != to:
                    continue
                y, imp = self.edges[e](nodes[f])
                imps[e] = imp
                acc = y if acc is None else acc + y
            nodes.append(acc)
        return nodes[3], torch.stack(imps, 0)

    def _forward_shared(self, x):
        nodes = [Node(x)]
        imps = [None] * len(NB201_EDGES)
        for to in range(1, 4):
            acc = None
            for e, (t, f) in enumerate(NB201_EDGES):
                if t == to:
                    acc, imps[e] = self.edges[e].accumulate(nodes[f], acc)
            nodes.append(Node(acc))
        return nodes[3].x, torch.stack(imps, 0)


class NB201Supernet(nn.Module):
    def __init__(self, C=16, N=5, num_classes=10, ratio=8, official=False):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, C, 3, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        cells = []
        for _ in range(N):
            cells.append(NB201SearchCell(C, ratio, official))
        cells.append(ResNetBasicBlock(C, 2 * C, 2))
        for _ in range(N):
            cells.append(NB201SearchCell(2 * C, ratio, official))
        cells.append(ResNetBasicBlock(2 * C, 4 * C, 2))
        for _ in range(N):
            cells.append(NB201SearchCell(4 * C, ratio, official))
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * C), nn.ReLU())
        self.classifier = nn.Linear(4 * C, num_classes)

    def forward(self, x):
        h = self.stem(x)
        imps = []
        for cell in self.cells:
            if isinstance(cell, NB201SearchCell):
                h, imp = cell(h)
                imps.append(imp)
            else:
                h = cell(h)
        h = self.lastact(h)
        h = h.mean((2, 3))
        logits = self.classifier(h)
        return logits, torch.stack(imps, 0)


def nb201_arch_ops(arch):
    """The six ops of an NB201 arch string, in ``NB201_EDGES`` order (the string lists them in that order)."""
    ops = [entry.split("~")[0] for node in arch.split("+") for entry in node.strip("|").split("|")]
    assert len(ops) == len(NB201_EDGES) and all(op in NB201_OPS for op in ops), arch
    return ops


class NB201InferCell(nn.Module):
    """The benchmark's ``InferCell`` at stride 1: ``layers[k]`` is the op of edge k, ``none`` included (a Zero, which
    is summed like the others), and node j is the sum of its edges."""

    def __init__(self, ops, C):
        super().__init__()
        self.layers = nn.ModuleList([nb201_op(name, C, affine=True) for name in ops])

    def forward(self, x):
        nodes = [x]
        for to in range(1, 4):
            ys = [self.layers[k](nodes[f]) for k, (t, f) in enumerate(NB201_EDGES) if t == to]
            nodes.append(sum(ys[1:], ys[0]))
        return nodes[3]


class NB201Network(nn.Module):
    """The benchmark's ``TinyNetwork``: the NB201 skeleton with one arch in all 3N cells. The ResNet blocks sit in
    ``cells`` between the stages. Returns ``(logits, None)`` like an evaluation network without auxiliary head."""

    def __init__(self, C, N, ops, num_classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        cells = []
        for stage in range(3):
            c = C << stage
            if stage > 0:
                cells.append(ResNetBasicBlock(c // 2, c, 2))
            cells.extend(NB201InferCell(ops, c) for _ in range(N))
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * C), nn.ReLU())
        self.classifier = nn.Linear(4 * C, num_classes)

    def forward(self, x):
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h)
        return self.classifier(self.lastact(h).mean((2, 3))), None


def set_official_style(model, official):
    """Switch every attention mixed op (NB201 or DARTS) in ``model`` between the official and fast forward."""
    return set_style(model, "official" if official else "fast")


def set_style(model, style):
    """Forward style of every attention mixed op (and so of the cells) in ``model``: official, fast or shared."""
    assert style in ("official", "fast", "shared"), style
    for m in model.modules():
        if isinstance(m, AttentionMixedOp):
            m.official = style == "official"
            m.shared = style == "shared"
    return model


# ---------------------------------------------------------------------------
# DARTS search space (AGNAS "Darts_Search_Space")
# ---------------------------------------------------------------------------

# Candidate ops in the AGNAS order ('none' last); index k of an importance row.
DARTS_OPS = [
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "skip_connect",
    "avg_pool_3x3",
    "max_pool_3x3",
    "none",
]


def darts_op(name, C, stride, affine):
    """One DARTS candidate op mapping C channels to C channels."""
    if name == "sep_conv_3x3":
        return SepConv(C, C, 3, stride, 1, affine=affine)
    if name == "sep_conv_5x5":
        return SepConv(C, C, 5, stride, 2, affine=affine)
    if name == "dil_conv_3x3":
        return DilConv(C, C, 3, stride, 2, 2, affine=affine)
    if name == "dil_conv_5x5":
        return DilConv(C, C, 5, stride, 4, 2, affine=affine)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine)
    if name == "avg_pool_3x3":
        return avg_pool(stride)
    if name == "max_pool_3x3":
        return max_pool(stride)
    if name == "none":
        return Zero(stride)
    raise ValueError(f"unknown DARTS op {name!r}")


def _darts_search_op(name, C, stride):
    op = darts_op(name, C, stride, affine=False)
    if name.endswith("_pool_3x3"):
        # the search supernet normalises pooled features (state keys `_ops.5.1.*`)
        op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
    return op


class DartsMixedOp(AttentionMixedOp):
    """DARTS attention mixed edge over ``DARTS_OPS``; importance has shape (8,)."""

    def __init__(self, C, stride, ratio=8, official=False):
        super().__init__([_darts_search_op(name, C, stride) for name in DARTS_OPS],
                         C, ratio, official)
        self.stride = stride


class DartsSearchCell(nn.Module):
    """DARTS search cell: two preprocessed inputs, ``steps`` intermediate nodes,
    one mixed edge from every earlier state to every node (14 edges for 4 steps,
    node-major: node 0 <- s0, s1; node 1 <- s0, s1, n0; ...).

    forward(s0, s1) -> (cat of the last ``multiplier`` states, importance (E, 8)).
    """

    def __init__(self, steps, multiplier, C_prev_prev, C_prev, C, reduction,
                 reduction_prev, ratio=8, official=False):
        super().__init__()
        self.reduction = reduction
        self._steps = steps
        self._multiplier = multiplier
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        edges = []
        for node in range(steps):
            for src in range(2 + node):
                stride = 2 if (reduction and src < 2) else 1
                edges.append(DartsMixedOp(C, stride, ratio, official))
        self._ops = nn.ModuleList(edges)

    def forward(self, s0, s1):
        if self._ops[0].shared:
            return self._forward_shared(s0, s1)
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        imps = []
        e = 0
        for _node in range(self._steps):
            acc = None
            for h in list(states):
                y, imp = self._ops[e](h)
                e += 1
                imps.append(imp)
                acc = y if acc is None else acc + y
            states.append(acc)
        return torch.cat(states[-self._multiplier:], 1), torch.stack(imps, 0)

    def _forward_shared(self, s0, s1):
        states = [Node(self.preprocess0(s0)), Node(self.preprocess1(s1))]
        imps = []
        e = 0
        for _node in range(self._steps):
            acc = None
            for h in list(states):
                acc, imp = self._ops[e].accumulate(h, acc)
                e += 1
                imps.append(imp)
            states.append(Node(acc))
        return torch.cat([n.x for n in states[-self._multiplier:]], 1), torch.stack(imps, 0)


class DartsSupernet(nn.Module):
    """AGNAS DARTS-space supernet (state_dict keys as ``model_search.Network``).

    forward(x) -> (logits, importance (layers, E, 8)) with the importance rows
    stacked in cell order (normal and reduction cells interleaved as built).
    """

    def __init__(self, C=16, num_classes=10, layers=8, steps=4, multiplier=4,
                 stem_multiplier=3, ratio=8, official=False):
        super().__init__()
        self._C = C
        self._num_classes = num_classes
        self._layers = layers
        self._steps = steps
        self._multiplier = multiplier
        C_stem = stem_multiplier * C
        self.stem = nn.Sequential(
            nn.Conv2d(3, C_stem, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_stem),
        )
        C_pp, C_p, C_cur = C_stem, C_stem, C
        reduction_prev = False
        cells = []
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_cur *= 2
            cells.append(DartsSearchCell(steps, multiplier, C_pp, C_p, C_cur,
                                         reduction, reduction_prev, ratio, official))
            reduction_prev = reduction
            C_pp, C_p = C_p, multiplier * C_cur
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        imps = []
        for cell in self.cells:
            s2, imp = cell(s0, s1)
            imps.append(imp)
            s0, s1 = s1, s2
        h = self.global_pooling(s1).flatten(1)
        return self.classifier(h), torch.stack(imps, 0)


# --- genotypes (data values of the official Darts_Search_Space/genotypes.py) ---

Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
NormalCell = namedtuple("NormalCell", "normal normal_concat")
ReduceCell = namedtuple("ReduceCell", "reduce reduce_concat")

DARTS_V1 = Genotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("skip_connect", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2),
            ("max_pool_3x3", 0), ("max_pool_3x3", 0), ("skip_connect", 2),
            ("skip_connect", 2), ("avg_pool_3x3", 0)],
    reduce_concat=[2, 3, 4, 5],
)

DARTS_V2 = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("skip_connect", 0),
            ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2),
            ("max_pool_3x3", 1), ("max_pool_3x3", 0), ("skip_connect", 2),
            ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5],
)

# AGNAS searched cells (official names Cell_0, Cell_2, Cell_3, Cell_5, Cell_6),
# one per stage: normal stage 1, reduction 1, normal stage 2, reduction 2,
# normal stage 3.
AGNAS = [
    NormalCell(normal=[("sep_conv_3x3", 0), ("dil_conv_3x3", 1), ("dil_conv_5x5", 0),
                       ("skip_connect", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 3),
                       ("dil_conv_5x5", 0), ("sep_conv_3x3", 3)],
               normal_concat=[2, 3, 4, 5]),
    ReduceCell(reduce=[("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("skip_connect", 0),
                       ("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("skip_connect", 1),
                       ("sep_conv_5x5", 0), ("sep_conv_3x3", 1)],
               reduce_concat=[2, 3, 4, 5]),
    NormalCell(normal=[("skip_connect", 0), ("sep_conv_3x3", 1), ("dil_conv_5x5", 0),
                       ("sep_conv_3x3", 1), ("dil_conv_3x3", 0), ("sep_conv_5x5", 1),
                       ("sep_conv_3x3", 1), ("dil_conv_5x5", 4)],
               normal_concat=[2, 3, 4, 5]),
    ReduceCell(reduce=[("skip_connect", 1), ("skip_connect", 0), ("dil_conv_3x3", 1),
                       ("dil_conv_3x3", 0), ("avg_pool_3x3", 0), ("max_pool_3x3", 1),
                       ("avg_pool_3x3", 0), ("max_pool_3x3", 1)],
               reduce_concat=[2, 3, 4, 5]),
    NormalCell(normal=[("skip_connect", 0), ("dil_conv_5x5", 1), ("sep_conv_3x3", 0),
                       ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("max_pool_3x3", 2),
                       ("sep_conv_5x5", 0), ("sep_conv_3x3", 1)],
               normal_concat=[2, 3, 4, 5]),
]

GENOTYPES = {"agnas": AGNAS, "darts_v1": DARTS_V1, "darts_v2": DARTS_V2}


def _cell_genotype(genotype, i, layers):
    """The genotype entry that cell ``i`` of ``layers`` is built from."""
    if hasattr(genotype, "normal") and hasattr(genotype, "reduce"):
        return genotype  # one DARTS genotype for every cell
    if len(genotype) != 5:
        raise ValueError("a per-stage genotype needs 5 entries")
    r1, r2 = layers // 3, 2 * layers // 3
    if i < r1:
        return genotype[0]
    if i == r1:
        return genotype[1]
    if i < r2:
        return genotype[2]
    if i == r2:
        return genotype[3]
    return genotype[4]


def drop_path(x, drop_prob):
    """Zero whole samples with probability ``drop_prob``; scale the kept ones."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


class DartsEvalCell(nn.Module):
    """A fixed (discrete) DARTS cell, state keys as ``model.Cell``."""

    def __init__(self, genotype, C_prev_prev, C_prev, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=True)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=True)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=True)
        if reduction:
            edges, concat = genotype.reduce, genotype.reduce_concat
        else:
            edges, concat = genotype.normal, genotype.normal_concat
        assert len(edges) % 2 == 0
        self._steps = len(edges) // 2
        self._concat = list(concat)
        self.multiplier = len(self._concat)
        self._indices = [src for _name, src in edges]
        self._ops = nn.ModuleList(
            [darts_op(name, C, 2 if (reduction and src < 2) else 1, affine=True)
             for name, src in edges])

    def forward(self, s0, s1, drop_prob=0.0):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(self._steps):
            acc = None
            for e in (2 * node, 2 * node + 1):
                op = self._ops[e]
                h = op(states[self._indices[e]])
                if self.training and drop_prob > 0.0 and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                acc = h if acc is None else acc + h
            states.append(acc)
        return torch.cat([states[i] for i in self._concat], 1)


class AuxiliaryHeadCIFAR(nn.Module):
    """Auxiliary classifier on an 8x8 feature map (state keys as the official one)."""

    def __init__(self, C, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),  # 2x2 -> 1x1
            nn.BatchNorm2d(768),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class NetworkCIFAR(nn.Module):
    """DARTS-space evaluation network (state keys as ``model.NetworkCIFAR``).

    ``genotype``: a ``Genotype`` (used for every cell) or a list of 5 per-stage
    cells (AGNAS form).  forward(x) -> (logits, logits_aux); ``logits_aux`` is
    only computed in training mode with ``auxiliary=True`` (else ``None``).
    """

    def __init__(self, C, num_classes, layers, auxiliary, genotype, drop_path_prob=0.0):
        super().__init__()
        self._layers = layers
        self._auxiliary = auxiliary
        self.drop_path_prob = drop_path_prob
        C_stem = 3 * C
        self.stem = nn.Sequential(
            nn.Conv2d(3, C_stem, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_stem),
        )
        C_pp, C_p, C_cur = C_stem, C_stem, C
        reduction_prev = False
        C_aux = None
        cells = []
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_cur *= 2
            cell = DartsEvalCell(_cell_genotype(genotype, i, layers), C_pp, C_p, C_cur,
                                 reduction, reduction_prev)
            cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, cell.multiplier * C_cur
            if i == 2 * layers // 3:
                C_aux = C_p
        self.cells = nn.ModuleList(cells)
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(C_aux, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

    def forward(self, x):
        logits_aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self._layers // 3 and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        h = self.global_pooling(s1).flatten(1)
        return self.classifier(h), logits_aux


def count_params(model):
    """Number of parameters, leaving out the auxiliary head (as the official
    ``utils.count_parameters_in_MB``, which reports this count / 1e6)."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)
