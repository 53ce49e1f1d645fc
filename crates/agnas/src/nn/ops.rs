//! Candidate operations and fixed blocks of the cell-based search spaces (DARTS, NAS-Bench-201).
//!
//! Parameter paths follow the PyTorch modules of the field (`op.1.weight` for the conv inside a `ReLUConvBN`
//! sequence, `conv_1`/`conv_2`/`bn` in `FactorizedReduce`, …) so weights exchange with PyTorch checkpoints by name.
use super::graph::{Export, Graph, Op, Value};
use super::init::{batch_norm2d, conv2d};
use super::layers::Conv2d;
use super::layers::ConvSpec;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Modules whose first step is a ReLU of their input, so that the ReLU can be shared by all edges reading a node.
pub trait AfterRelu: std::fmt::Debug {
    /// The module's output given `relu` = ReLU(input).
    fn forward_relu(&self, relu: &Tensor, train: bool) -> Tensor;
}

/// Zeros of the (strided) input's shape: the `none` candidate. It stays in the autograd graph (a zero gradient),
/// as `x.mul(0.)` does in PyTorch; a [`crate::nn::MixedOp`] skips it altogether.
#[derive(Debug, Clone, Copy)]
pub struct Zero {
    pub stride: i64,
}

impl ModuleT for Zero {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        if self.stride == 1 {
            xs * 0.0
        } else {
            let s = self.stride;
            xs.slice(2, 0, None::<i64>, s).slice(3, 0, None::<i64>, s) * 0.0
        }
    }
}

impl Export for Zero {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let x = if self.stride == 1 { x } else { g.push(Op::Subsample { offset: 0, step: self.stride }, &[x]) };
        g.push(Op::Scale(0.0), &[x])
    }
}

/// The identity (`skip_connect` at stride 1).
#[derive(Debug, Clone, Copy)]
pub struct Identity;

impl ModuleT for Identity {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        xs.shallow_clone()
    }
}

impl Export for Identity {
    fn export(&self, _g: &mut Graph, x: Value) -> Value {
        x
    }
}

/// Which pooling a [`Pool`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// Average over the valid (unpadded) positions only (`count_include_pad=False`).
    Avg,
    Max,
}

/// 3×3 pooling with padding 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub kind: PoolKind,
    pub stride: i64,
}

impl ModuleT for Pool {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        let s = self.stride;
        match self.kind {
            PoolKind::Avg => xs.avg_pool2d([3, 3], [s, s], [1, 1], false, false, None::<i64>),
            PoolKind::Max => xs.max_pool2d([3, 3], [s, s], [1, 1], [1, 1], false),
        }
    }
}

impl Export for Pool {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let (kernel, stride, padding) = (3, self.stride, 1);
        let op = match self.kind {
            PoolKind::Avg => Op::AvgPool { kernel, stride, padding, count_include_pad: false },
            PoolKind::Max => Op::MaxPool { kernel, stride, padding },
        };
        g.push(op, &[x])
    }
}

/// `Sequential(ReLU, Conv k×k, BN)`; NAS-Bench-201's `nor_conv_k×k` and the DARTS cell preprocessing.
#[derive(Debug)]
pub struct ReLUConvBN {
    conv: Conv2d,
    bn: nn::BatchNorm,
}

impl ReLUConvBN {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, k: i64, spec: ConvSpec, affine: bool) -> Self {
        let op = p / "op";
        ReLUConvBN { conv: conv2d(&op / "1", c_in, c_out, k, spec), bn: batch_norm2d(&op / "2", c_out, affine) }
    }
}

impl ModuleT for ReLUConvBN {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_relu(&xs.relu(), train)
    }
}

impl AfterRelu for ReLUConvBN {
    fn forward_relu(&self, relu: &Tensor, train: bool) -> Tensor {
        relu.apply(&self.conv).apply_t(&self.bn, train)
    }
}

impl Export for ReLUConvBN {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let r = g.relu(x);
        let h = g.conv(&self.conv, r);
        g.batch_norm(&self.bn, h)
    }
}

/// Dilated depthwise-separable conv: `Sequential(ReLU, dw k×k dilated, pw 1×1, BN)`.
#[derive(Debug)]
pub struct DilConv {
    dw: Conv2d,
    pw: Conv2d,
    bn: nn::BatchNorm,
    /// The dw conv runs undilated, unstrided on the even rows and columns (see `new`).
    subsample: bool,
}

impl DilConv {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, dilation: i64, affine: bool) -> Self {
        let op = p / "op";
        let padding = dilation * (k - 1) / 2;
        // With stride = dilation = 2 and this padding, output (i, j) reads only input rows and columns
        // 2(i + a - (k-1)/2): the even ones. So the conv equals an undilated stride-1 conv of the even rows and
        // columns, exactly (same weight, same terms, same order). libtorch's CPU backward of the strided dilated
        // depthwise conv falls back to im2col and took 2–3× longer than this.
        let subsample = stride == 2 && dilation == 2;
        let dw_spec = if subsample {
            ConvSpec::default().padding((k - 1) / 2).groups(c_in)
        } else {
            ConvSpec::stride(stride).padding(padding).dilation(dilation).groups(c_in)
        };
        DilConv {
            dw: conv2d(&op / "1", c_in, c_in, k, dw_spec),
            pw: conv2d(&op / "2", c_in, c_out, 1, ConvSpec::default()),
            bn: batch_norm2d(&op / "3", c_out, affine),
            subsample,
        }
    }
}

impl ModuleT for DilConv {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_relu(&xs.relu(), train)
    }
}

impl AfterRelu for DilConv {
    fn forward_relu(&self, relu: &Tensor, train: bool) -> Tensor {
        let dw = if self.subsample {
            relu.slice(2, 0, None::<i64>, 2).slice(3, 0, None::<i64>, 2).apply(&self.dw)
        } else {
            relu.apply(&self.dw)
        };
        dw.apply(&self.pw).apply_t(&self.bn, train)
    }
}

impl Export for DilConv {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let r = g.relu(x);
        let r = if self.subsample { g.push(Op::Subsample { offset: 0, step: 2 }, &[r]) } else { r };
        let dw = g.conv(&self.dw, r);
        let pw = g.conv(&self.pw, dw);
        g.batch_norm(&self.bn, pw)
    }
}

/// Separable conv applied twice (DARTS `sep_conv_k×k`); only the first depthwise conv is strided.
#[derive(Debug)]
pub struct SepConv {
    first: DilConvParts,
    second: DilConvParts,
}

/// One ReLU-dw-pw-BN half of a [`SepConv`], at the Sequential indices PyTorch gives it.
#[derive(Debug)]
struct DilConvParts {
    dw: Conv2d,
    pw: Conv2d,
    bn: nn::BatchNorm,
}

impl SepConv {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, affine: bool) -> Self {
        let op = p / "op";
        let padding = (k - 1) / 2;
        let half = |first: usize, stride: i64, c_out: i64| DilConvParts {
            dw: conv2d(&op / first, c_in, c_in, k, ConvSpec::stride(stride).padding(padding).groups(c_in)),
            pw: conv2d(&op / (first + 1), c_in, c_out, 1, ConvSpec::default()),
            bn: batch_norm2d(&op / (first + 2), c_out, affine),
        };
        SepConv { first: half(1, stride, c_in), second: half(5, 1, c_out) }
    }
}

impl AfterRelu for DilConvParts {
    fn forward_relu(&self, relu: &Tensor, train: bool) -> Tensor {
        relu.apply(&self.dw).apply(&self.pw).apply_t(&self.bn, train)
    }
}

impl Export for DilConvParts {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let r = g.relu(x);
        let dw = g.conv(&self.dw, r);
        let pw = g.conv(&self.pw, dw);
        g.batch_norm(&self.bn, pw)
    }
}

impl ModuleT for SepConv {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_relu(&xs.relu(), train)
    }
}

impl AfterRelu for SepConv {
    fn forward_relu(&self, relu: &Tensor, train: bool) -> Tensor {
        // In place: nothing else reads the first half's BN output (BN's backward keeps its input, not its output),
        // so the ReLU needs no tensor of its own.
        let mut first = self.first.forward_relu(relu, train);
        self.second.forward_relu(&first.relu_(), train)
    }
}

impl Export for SepConv {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let first = self.first.export(g, x);
        self.second.export(g, first)
    }
}

/// Halves the resolution with two offset 1×1 stride-2 convs whose outputs are concatenated (DARTS).
#[derive(Debug)]
pub struct FactorizedReduce {
    conv_1: Conv2d,
    conv_2: Conv2d,
    bn: nn::BatchNorm,
}

impl FactorizedReduce {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, affine: bool) -> Self {
        FactorizedReduce {
            conv_1: conv2d(&p / "conv_1", c_in, c_out / 2, 1, ConvSpec::stride(2)),
            conv_2: conv2d(&p / "conv_2", c_in, c_out / 2, 1, ConvSpec::stride(2)),
            bn: batch_norm2d(&p / "bn", c_out, affine),
        }
    }
}

impl ModuleT for FactorizedReduce {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_relu(&xs.relu(), train)
    }
}

impl AfterRelu for FactorizedReduce {
    fn forward_relu(&self, r: &Tensor, train: bool) -> Tensor {
        let shifted = r.narrow(2, 1, r.size()[2] - 1).narrow(3, 1, r.size()[3] - 1);
        Tensor::cat(&[r.apply(&self.conv_1), shifted.apply(&self.conv_2)], 1).apply_t(&self.bn, train)
    }
}

impl Export for FactorizedReduce {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let r = g.relu(x);
        let a = g.conv(&self.conv_1, r);
        let shifted = g.push(Op::Subsample { offset: 1, step: 1 }, &[r]);
        let b = g.conv(&self.conv_2, shifted);
        let cat = g.push(Op::Concat, &[a, b]);
        g.batch_norm(&self.bn, cat)
    }
}

/// The NAS-Bench-201 reduction block: a ResNet basic block whose shortcut is AvgPool 2×2 + Conv 1×1.
#[derive(Debug)]
pub struct ResNetBasicBlock {
    conv_a: ReLUConvBN,
    conv_b: ReLUConvBN,
    downsample: Conv2d,
}

impl ResNetBasicBlock {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        ResNetBasicBlock {
            conv_a: ReLUConvBN::new(&p / "conv_a", c_in, c_out, 3, ConvSpec::stride(stride).padding(1), true),
            conv_b: ReLUConvBN::new(&p / "conv_b", c_out, c_out, 3, ConvSpec::default().padding(1), true),
            downsample: conv2d(&p / "downsample" / "1", c_in, c_out, 1, ConvSpec::default()),
        }
    }
}

impl ModuleT for ResNetBasicBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let shortcut = xs.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>).apply(&self.downsample);
        shortcut + self.conv_b.forward_t(&self.conv_a.forward_t(xs, train), train)
    }
}

impl Export for ResNetBasicBlock {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let pooled = g.push(Op::AvgPool { kernel: 2, stride: 2, padding: 0, count_include_pad: true }, &[x]);
        let shortcut = g.conv(&self.downsample, pooled);
        let a = self.conv_a.export(g, x);
        let b = self.conv_b.export(g, a);
        g.sum(&[shortcut, b])
    }
}
