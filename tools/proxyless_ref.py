"""PyTorch reference for the AGNAS ProxylessNAS (macro, ImageNet) search space.

Kept apart from ``agnas_ref.py`` (the cell-based NB201 and DARTS spaces): this space shares no module with those
(MobileNetV2 blocks, ReLU6, a per-layer attention with reduction 16 instead of per-edge mixed ops), and it has its
own FLOPs rule.

Module and attribute names give ``state_dict`` keys equal to the official AGNAS code's
(``ProxylessNAS_Search_Space/attention_search/att_supernet.py`` for the supernet,
``retrain_architecture/model.py`` for the retrain network), so their checkpoints load by name; the equality is
checked by ``tools/check_proxyless_official.py``. Differences from the official code, all deliberate:

* the head pools adaptively (the official ``AvgPool2d(input_size // 32)`` only works for multiples of 32; both agree
  there);
* the supernet's forward returns ``(logits, importance)``, the importance being a (21, 7) tensor (see
  ``ProxylessSupernet``) instead of a list of gate slices;
* the retrain network rejects a removed layer (id -1) where the layer cannot be an identity.

Modules are built in the official order with the same random draws, so under the same seed a reference model starts
from exactly the official model's values.

Layout summary (width multiplier ``w``, ``c(x) = int(x * w)``):

    conv_bn.{0,1}          Conv 3x3 3 -> c(40), stride 2, + BN + ReLU6
    MBConv_ratio_1.conv.*  MBConv c(40) -> c(24), kernel 3, expand 1, stride 1
    features.{0..20}       21 searchable layers; stages (c, n, s) of PROXYLESS_STAGES, first layer of a stage has
                           stride s, the others 1
    conv_1x1_bn.{0,1}      Conv 1x1 -> 1728 (int(1728 w) for w > 1) + BN + ReLU6
    global average pooling, classifier (supernet: ``classifier.0`` Linear; retrain: ``classifier.0`` Dropout,
    ``classifier.1`` Linear)
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Candidate blocks of a searchable layer as (kernel, expand), in the official ``blocks_keys`` order (kernel-major).
PROXYLESS_BLOCKS = [(3, 3), (3, 6), (5, 3), (5, 6), (7, 3), (7, 6)]
# The official names of the same candidates (keys of the FLOPs lookup tables).
PROXYLESS_BLOCK_KEYS = [f"mobilenet_{k}x{k}_ratio_{e}" for k, e in PROXYLESS_BLOCKS]
# Index of the identity candidate in an importance row (exported as -1).
IDENTITY = len(PROXYLESS_BLOCKS)
# (channels, layers, stride of the first layer) per stage, before the width multiplier.
PROXYLESS_STAGES = [(32, 4, 2), (56, 4, 2), (112, 4, 2), (128, 4, 1), (256, 4, 2), (432, 1, 1)]
STEM_CHANNELS = 40
FIRST_BLOCK_CHANNELS = 24
HEAD_CHANNELS = 1728
# SE reduction of the macro attention layer.
ATTENTION_REDUCTION = 16

# The released architecture (valid.py's default model id) and the other id list of model.py's __main__.
RELEASED_ARCH = [1, 1, -1, 2, 1, -1, 5, 1, 1, -1, 5, 1, 1, -1, 1, 4, 3, -1, 5, 5, 5]
ALT_ARCH = [0, 3, 2, 2, 5, 0, 2, 4, 3, 3, 5, 0, 5, 1, 3, -1, 5, 5, 5, 2, 0]


def scaled(channels, width_mult):
    """``int(channels * width_mult)``, as the official code scales every width (truncation of the float product)."""
    return int(channels * width_mult)


def head_channels(width_mult):
    """Channels of the last 1x1 conv: 1728, scaled only when the width multiplier is above 1."""
    return scaled(HEAD_CHANNELS, width_mult) if width_mult > 1.0 else HEAD_CHANNELS


def layer_settings(width_mult=1.0):
    """The 21 searchable layers as ``(inp, oup, stride)``."""
    layers = []
    inp = scaled(FIRST_BLOCK_CHANNELS, width_mult)
    for c, n, s in PROXYLESS_STAGES:
        oup = scaled(c, width_mult)
        for i in range(n):
            layers.append((inp, oup, s if i == 0 else 1))
            inp = oup
    return layers


def skippable(inp, oup, stride):
    """Whether a layer has the identity candidate (and so may be removed in a retrain network)."""
    return stride == 1 and inp == oup


def _conv_out(size, kernel, stride):
    """Output size of a conv with padding (kernel - 1) // 2."""
    return (size + 2 * ((kernel - 1) // 2) - kernel) // stride + 1


class MBConv(nn.Module):
    """MobileNetV2 inverted residual block (the official ``InvertedResidual``).

    expand 1: depthwise k x k (stride) + BN + ReLU6, pointwise to ``oup`` + BN (``conv.{0,1,3,4}``);
    else: pointwise to ``inp * expand`` + BN + ReLU6, depthwise k x k (padding (k-1)/2, stride) + BN + ReLU6,
    linear pointwise to ``oup`` + BN (``conv.{0,1,3,4,6,7}``).
    The input is added to the result when the stride is 1 and ``inp == oup``. No conv has a bias.
    """

    def __init__(self, inp, oup, kernel, stride, expand):
        super().__init__()
        self.inp, self.oup, self.kernel, self.stride, self.expand = inp, oup, kernel, stride, expand
        self.residual = skippable(inp, oup, stride)
        hidden = inp * expand
        pad = (kernel - 1) // 2
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(inp, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, kernel, stride, pad, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.residual else y


def candidate(index, inp, oup, stride):
    """Candidate block ``index`` (0..5, ``PROXYLESS_BLOCKS`` order) of a searchable layer."""
    kernel, expand = PROXYLESS_BLOCKS[index]
    return MBConv(inp, oup, kernel, stride, expand)


class MacroAttention(nn.Module):
    """Attention over the concatenated candidate outputs of a layer: global average pooling, Linear n -> n // 16,
    ReLU, Linear -> n, Sigmoid (no biases); forward returns the gates (B, n)."""

    def __init__(self, channels, reduction=ATTENTION_REDUCTION):
        super().__init__()
        hidden = channels // reduction
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, X):
        return self.fc(X.mean((2, 3)))


class SearchBlock(nn.Module):
    """One searchable layer of the supernet (the official ``AttSuperBlock``).

    Candidates: the six MBConvs ``_ops.{0..5}`` (each with its own residual where it has one), plus the identity as
    7th candidate when the layer is ``skippable``. Candidate k owns channels ``k*oup .. (k+1)*oup`` of the
    concatenation that ``attention_layer`` reads; the output is the sum over candidates of output times gate slice.

    forward(x) -> (out, importance) with importance (n_cand,) = for each candidate, the sum over the batch of the
    mean of its gate slice over channels (what the official ``compute_attention.py`` adds up per batch).
    """

    def __init__(self, inp, oup, stride):
        super().__init__()
        self.inp, self.oup, self.stride = inp, oup, stride
        self.identity = skippable(inp, oup, stride)
        self._ops = nn.ModuleList([candidate(k, inp, oup, stride) for k in range(len(PROXYLESS_BLOCKS))])
        self.n_cand = len(self._ops) + (1 if self.identity else 0)
        self.attention_layer = MacroAttention(oup * self.n_cand)

    def forward(self, x):
        outs = [op(x) for op in self._ops]
        if self.identity:
            outs.append(x)
        return self.gated_sum(outs, self.attention_layer(torch.cat(outs, 1)))  # gates (B, n_cand * oup)

    def gated_sum(self, outs, gates):
        """(sum of each candidate output times its slice of the gates, importance per candidate)."""
        B, C = gates.shape[0], self.oup
        out = None
        for k, y in enumerate(outs):
            term = y * gates[:, k * C:(k + 1) * C, None, None]
            out = term if out is None else out + term
        importance = gates.detach().view(B, self.n_cand, C).sum((0, 2)) / C
        return out, importance


def conv_bn_relu6(inp, oup, kernel, stride):
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(),
    )


class _Skeleton(nn.Module):
    """Stem, the fixed first block and the head shared by the supernet and the retrain network."""

    def _build_stem(self, width_mult):
        stem = scaled(STEM_CHANNELS, width_mult)
        self.conv_bn = conv_bn_relu6(3, stem, 3, 2)
        self.MBConv_ratio_1 = MBConv(stem, scaled(FIRST_BLOCK_CHANNELS, width_mult), 3, 1, 1)

    def _build_head(self, inp, width_mult):
        self.last_channel = head_channels(width_mult)
        self.conv_1x1_bn = conv_bn_relu6(inp, self.last_channel, 1, 1)

    def _stem(self, x):
        return self.MBConv_ratio_1(self.conv_bn(x))

    def _head(self, x):
        x = self.conv_1x1_bn(x)
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


def init_supernet_weights(model):
    """The supernet's initialisation: every conv (depthwise ones too) N(0, sqrt(2 / (k*k*C_out))), BN weight 1 and
    bias 0, Linear layers keep PyTorch's default."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            with torch.no_grad():
                m.weight.normal_(0.0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ProxylessSupernet(_Skeleton):
    """AGNAS ProxylessNAS supernet (the official ``AttSuperNetwork``, keys identical).

    forward(x) -> (logits, importance (21, 7)): row l is layer l's ``SearchBlock`` importance, column 6 (identity)
    is 0 for the layers without identity candidate.
    ``input_size`` is accepted for the official signature only: the head pools adaptively.
    """

    def __init__(self, n_class=1000, input_size=224, width_mult=1.0):
        super().__init__()
        self.input_size = input_size
        self._build_stem(width_mult)
        self.features = nn.ModuleList([SearchBlock(i, o, s) for i, o, s in layer_settings(width_mult)])
        self._build_head(self.features[-1].oup, width_mult)
        self.classifier = nn.Sequential(nn.Linear(self.last_channel, n_class))
        init_supernet_weights(self)

    def forward(self, x):
        x = self._stem(x)
        rows = []
        for block in self.features:
            x, imp = block(x)
            if imp.shape[0] < IDENTITY + 1:
                imp = torch.cat([imp, imp.new_zeros(IDENTITY + 1 - imp.shape[0])])
            rows.append(imp)
        return self._head(x), torch.stack(rows, 0)


def check_arch(arch, width_mult=1.0):
    """Validates a 21-entry id list (0..5 a candidate, -1 a removed layer, only where the layer is skippable)."""
    layers = layer_settings(width_mult)
    if len(arch) != len(layers):
        raise ValueError(f"an architecture has {len(layers)} ids, got {len(arch)}")
    for l, (i, (inp, oup, stride)) in enumerate(zip(arch, layers)):
        if not (-1 <= i < len(PROXYLESS_BLOCKS)):
            raise ValueError(f"layer {l}: id {i} is not in -1..{len(PROXYLESS_BLOCKS) - 1}")
        if i == -1 and not skippable(inp, oup, stride):
            raise ValueError(f"layer {l} ({inp}->{oup}, stride {stride}) cannot be removed (id -1)")


class ProxylessNetwork(_Skeleton):
    """Retrain network of one architecture (the official ``retrain_architecture/model.py`` ``Network``, keys
    identical): ``features.{j}`` numbers the kept layers only; ``classifier = Sequential(Dropout, Linear)``.
    PyTorch's default initialisation (the official retrain net has no custom one). forward(x) -> logits.
    """

    def __init__(self, arch, n_class=1000, input_size=224, width_mult=1.0, dropout=0.2):
        super().__init__()
        check_arch(arch, width_mult)
        self.arch = list(arch)
        self.input_size = input_size
        self._build_stem(width_mult)
        blocks = []
        for i, (inp, oup, stride) in zip(arch, layer_settings(width_mult)):
            if i >= 0:
                blocks.append(candidate(i, inp, oup, stride))
        self.features = nn.Sequential(*blocks)
        self._build_head(layer_settings(width_mult)[-1][1], width_mult)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, n_class))

    def forward(self, x):
        return self._head(self.features(self._stem(x)))


def label_smoothing_ce(logits, labels, epsilon=0.1):
    """The official ``CrossEntropyLabelSmooth``: targets (1 - eps) one-hot + eps / K against log-softmax, summed over
    classes and averaged over the batch."""
    logp = F.log_softmax(logits, 1)
    target = torch.zeros_like(logp).scatter_(1, labels[:, None], 1.0) * (1.0 - epsilon) + epsilon / logits.shape[1]
    return (-target * logp).mean(0).sum()


# ---------------------------------------------------------------------------
# FLOPs (the official lookup tables' counting rule)
# ---------------------------------------------------------------------------

def conv_flops(c_in, c_out, kernel, groups, h_out, w_out):
    """Multiply-accumulates of a conv without bias: C_in / groups * k^2 * C_out * H_out * W_out."""
    return c_in // groups * kernel * kernel * c_out * h_out * w_out


def linear_flops(n_in, n_out):
    """A Linear as the tables count it: n_in multiplies and n_in - 1 adds per output, (2 n_in - 1) * n_out."""
    return (2 * n_in - 1) * n_out


def mbconv_flops(inp, oup, kernel, stride, expand, h, w):
    """FLOPs of an MBConv on an h x w input (BN, ReLU6 and the residual add are not counted)."""
    hidden = inp * expand
    ho, wo = _conv_out(h, kernel, stride), _conv_out(w, kernel, stride)
    total = 0
    if expand != 1:
        total += conv_flops(inp, hidden, 1, 1, h, w)
    total += conv_flops(hidden, hidden, kernel, hidden, ho, wo)
    total += conv_flops(hidden, oup, 1, 1, ho, wo)
    return total


def flops_parts(arch, width_mult=1.0, input_size=224, n_class=1000):
    """(pre, [per-layer block FLOPs], post) of an architecture: ``arch`` a 21-entry id list (-1 = removed, 0), or
    ``None`` for the supernet's blocks (the sum of all six candidates of every layer; attention not counted).

    pre = stem conv + the fixed first MBConv; post = the 1x1 head conv + the Linear. Pooling, BN and activations
    are not counted (the rule of ``retrain_architecture/thop``, which made the ``op_flops_dict_*.pkl`` tables).
    """
    stem = scaled(STEM_CHANNELS, width_mult)
    h = _conv_out(input_size, 3, 2)
    pre = conv_flops(3, stem, 3, 1, h, h) + mbconv_flops(stem, scaled(FIRST_BLOCK_CHANNELS, width_mult), 3, 1, 1, h, h)
    blocks = []
    for l, (inp, oup, stride) in enumerate(layer_settings(width_mult)):
        ids = range(len(PROXYLESS_BLOCKS)) if arch is None else [arch[l]]
        f = 0
        for i in ids:
            if i >= 0:
                k, e = PROXYLESS_BLOCKS[i]
                f += mbconv_flops(inp, oup, k, stride, e, h, h)
        blocks.append(f)
        h = _conv_out(h, 3, stride)
    last = layer_settings(width_mult)[-1][1]
    post = conv_flops(last, head_channels(width_mult), 1, 1, h, h) + linear_flops(head_channels(width_mult), n_class)
    return pre, blocks, post


def flops(arch, width_mult=1.0, input_size=224, n_class=1000):
    """Table FLOPs of an architecture (or of the supernet with ``arch=None``): pre + Σ blocks + post."""
    pre, blocks, post = flops_parts(arch, width_mult, input_size, n_class)
    return pre + sum(blocks) + post


def attention_flops(width_mult=1.0):
    """The supernet's attention Linears counted like the classifier (not part of ``flops(None)``)."""
    total = 0
    for inp, oup, stride in layer_settings(width_mult):
        n = oup * (len(PROXYLESS_BLOCKS) + (1 if skippable(inp, oup, stride) else 0))
        total += linear_flops(n, n // ATTENTION_REDUCTION) + linear_flops(n // ATTENTION_REDUCTION, n)
    return total


def count_params(model):
    return sum(p.numel() for p in model.parameters())
