"""PyTorch reference modules for the Rust AGNAS implementation.

Module and attribute names are chosen so that ``state_dict`` keys match the
parameter names used on the Rust side.  Everything here is a plain,
self-contained re-implementation used to generate test fixtures and to
benchmark the reference training step.
"""

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


def nb201_op(name, C):
    if name == "none":
        return Zero(1)
    if name == "skip_connect":
        return Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(C, C, 1, 1, 0, affine=False)
    if name == "nor_conv_3x3":
        return ReLUConvBN(C, C, 3, 1, 1, affine=False)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {name!r}")


class MixedOp(nn.Module):
    """Attention-guided mixed edge.

    ``official=False`` (the "fast" style): weighted sum of the op outputs with
    the matching channel slice of the gates, importance computed on device.

    ``official=True``: mirrors the data flow of the original implementation:
    concatenate, multiply by the gates, sum the channel slices, and read each
    op's importance back to the host with ``.item()`` (one sync per op).
    Both styles have identical parameters and produce the same numbers.
    """

    def __init__(self, C, ratio=8, official=False):
        super().__init__()
        self.C = C
        self.official = official
        self._ops = nn.ModuleList([nb201_op(name, C) for name in NB201_OPS])
        self.attention = SEAttention(len(NB201_OPS) * C, ratio)

    def forward(self, x):
        if self.official:
            return self._forward_official(x)
        return self._forward_fast(x)

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


class NB201SearchCell(nn.Module):
    def __init__(self, C, ratio=8, official=False):
        super().__init__()
        self.edges = nn.ModuleList([MixedOp(C, ratio, official) for _ in NB201_EDGES])

    def forward(self, x):
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


def set_official_style(model, official):
    """Switch every MixedOp in ``model`` between the official and fast forward."""
    for m in model.modules():
        if isinstance(m, MixedOp):
            m.official = official
    return model
