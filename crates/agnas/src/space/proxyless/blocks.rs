//! The macro space's blocks under the official module names: the MobileNetV2 inverted residual (`conv.0` … `conv.7`)
//! and the conv-BN-ReLU6 stem and head (`conv_bn`, `conv_1x1_bn`).
use super::arch::MbConvKind;
use crate::nn::graph::{Export, Graph, Value};
use crate::nn::init::{batch_norm2d, conv2d, conv2d_fan_out_normal};
use crate::nn::layers::Conv2d;
use crate::nn::layers::ConvSpec;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// How convolutions start: the supernet's fan-out normal, or PyTorch's default (the retrain network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvInit {
    FanOutNormal,
    PyTorch,
}

impl ConvInit {
    fn conv(self, p: nn::Path, c_in: i64, c_out: i64, k: i64, spec: ConvSpec) -> Conv2d {
        match self {
            ConvInit::FanOutNormal => conv2d_fan_out_normal(p, c_in, c_out, k, spec),
            ConvInit::PyTorch => conv2d(p, c_in, c_out, k, spec),
        }
    }
}

/// Conv k×k (no bias) → BN → ReLU6, as `nn.Sequential` indices 0 and 1.
#[derive(Debug)]
pub struct ConvBnRelu6 {
    conv: Conv2d,
    bn: nn::BatchNorm,
}

impl ConvBnRelu6 {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, init: ConvInit) -> Self {
        let spec = ConvSpec::stride(stride).padding((k - 1) / 2);
        ConvBnRelu6 { conv: init.conv(&p / "0", c_in, c_out, k, spec), bn: batch_norm2d(&p / "1", c_out, true) }
    }
}

impl ModuleT for ConvBnRelu6 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train).relu6()
    }
}

impl Export for ConvBnRelu6 {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let h = g.conv(&self.conv, x);
        let h = g.batch_norm(&self.bn, h);
        g.relu6(h)
    }
}

/// The inverted residual: [pw 1×1 → BN → ReLU6] (absent at expansion 1) → dw k×k → BN → ReLU6 → pw-linear 1×1 → BN.
#[derive(Debug)]
pub struct MbConv {
    expand: Option<(Conv2d, nn::BatchNorm)>,
    depthwise: Conv2d,
    dw_bn: nn::BatchNorm,
    project: Conv2d,
    out_bn: nn::BatchNorm,
    /// Whether the block adds its input (stride 1 and as many channels out as in).
    pub residual: bool,
}

impl MbConv {
    /// The official `InvertedResidual(inp, oup, k, (k − 1)/2, stride, expand)` at `p/conv`.
    pub fn new(p: nn::Path, inp: i64, oup: i64, kind: MbConvKind, stride: i64, init: ConvInit) -> Self {
        let c = &p / "conv";
        let hidden = inp * kind.expand;
        let (expand, first) = if kind.expand == 1 {
            (None, 0)
        } else {
            let conv = init.conv(&c / "0", inp, hidden, 1, ConvSpec::default());
            (Some((conv, batch_norm2d(&c / "1", hidden, true))), 3)
        };
        let k = kind.kernel;
        let dw = ConvSpec::stride(stride).padding((k - 1) / 2).groups(hidden);
        MbConv {
            expand,
            depthwise: init.conv(&c / first, hidden, hidden, k, dw),
            dw_bn: batch_norm2d(&c / (first + 1), hidden, true),
            project: init.conv(&c / (first + 3), hidden, oup, 1, ConvSpec::default()),
            out_bn: batch_norm2d(&c / (first + 4), oup, true),
            residual: stride == 1 && inp == oup,
        }
    }

    /// The block without its residual: what the supernet gates (it folds the residuals into one scaled input).
    pub fn branch(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = match &self.expand {
            Some((conv, bn)) => xs.apply(conv).apply_t(bn, train).relu6(),
            None => xs.shallow_clone(),
        };
        h.apply(&self.depthwise).apply_t(&self.dw_bn, train).relu6().apply(&self.project).apply_t(&self.out_bn, train)
    }
}

impl ModuleT for MbConv {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let y = self.branch(xs, train);
        if self.residual {
            y + xs
        } else {
            y
        }
    }
}

impl Export for MbConv {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let h = match &self.expand {
            Some((conv, bn)) => {
                let h = g.conv(conv, x);
                let h = g.batch_norm(bn, h);
                g.relu6(h)
            }
            None => x,
        };
        let h = g.conv(&self.depthwise, h);
        let h = g.batch_norm(&self.dw_bn, h);
        let h = g.relu6(h);
        let h = g.conv(&self.project, h);
        let y = g.batch_norm(&self.out_bn, h);
        if self.residual {
            g.sum(&[y, x])
        } else {
            y
        }
    }
}
