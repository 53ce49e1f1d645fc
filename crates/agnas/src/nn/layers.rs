//! The layers whose hyper-parameters the exporters and the MAC count need: tch keeps a convolution's private, so
//! they are kept here beside it; every forward reports its multiply-accumulates to [`super::flops`].
use super::flops::record;
use std::ops::Deref;
use tch::nn::{self, Module};
use tch::{Device, Tensor};

/// `nn.Conv2d` hyper-parameters beyond the channel counts and kernel size.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub stride: i64,
    pub padding: i64,
    pub dilation: i64,
    pub groups: i64,
    pub bias: bool,
}

impl Default for ConvSpec {
    fn default() -> Self {
        ConvSpec { stride: 1, padding: 0, dilation: 1, groups: 1, bias: false }
    }
}

impl ConvSpec {
    pub fn stride(stride: i64) -> Self {
        ConvSpec { stride, ..Default::default() }
    }
    pub fn padding(mut self, padding: i64) -> Self {
        self.padding = padding;
        self
    }
    pub fn dilation(mut self, dilation: i64) -> Self {
        self.dilation = dilation;
        self
    }
    pub fn groups(mut self, groups: i64) -> Self {
        self.groups = groups;
        self
    }
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

/// A convolution that reports its MACs: `C_in/groups · k_h · k_w` per output element; with its hyper-parameters
/// (tch keeps them private), which the exporters read.
#[derive(Debug)]
pub struct Conv2d(pub nn::Conv2D, pub ConvSpec);

impl Deref for Conv2d {
    type Target = nn::Conv2D;
    fn deref(&self) -> &nn::Conv2D {
        &self.0
    }
}

impl Module for Conv2d {
    /// In the type of `xs`: a mixed-precision run keeps fp32 weights and convolves bf16 maps with bf16 copies of them,
    /// whose gradients autograd adds to the fp32 weights' (PyTorch's autocast).
    fn forward(&self, xs: &Tensor) -> Tensor {
        let y = if self.needs_subsample(xs) { self.forward_subsampled(xs) } else { self.convolve(xs, self.1.stride) };
        record(&y, self.0.ws.size()[1..].iter().product());
        y
    }
}

impl Conv2d {
    /// oneDNN's x64 kernels for the weight gradient of a strided 1×1 convolution in channels-last write past their
    /// workspace when C_in is below their channel block (8 with AVX2, 16 with AVX-512; uxlfoundation/oneDNN#6035):
    /// wrong gradients or a hang, with libtorch 2.11 and PyTorch 2.15 alike (DARTS' `FactorizedReduce` at small
    /// widths). Wider layers keep the faster kernel.
    fn needs_subsample(&self, xs: &Tensor) -> bool {
        let (ws, spec) = (&self.0.ws, &self.1);
        xs.device() == Device::Cpu
            && ws.size()[1] < 16
            && ws.size()[2..] == [1, 1]
            && spec.stride > 1
            && spec.padding == 0
    }

    /// A 1×1 convolution of stride s reads only every s-th row and column: it is the stride-1 convolution of that
    /// subsample, which a stride-1 kernel computes.
    fn forward_subsampled(&self, xs: &Tensor) -> Tensor {
        let s = self.1.stride;
        self.convolve(&xs.slice(2, 0, None, s).slice(3, 0, None, s), 1)
    }

    /// Grouped (depthwise) convolutions of reduced-precision maps run in the weights' type: oneDNN's bf16 backward
    /// for them is its im2col GEMM here, which made the ProxylessNAS step 1.7× slower than fp32 (BENCHMARKS.md).
    fn convolve(&self, xs: &Tensor, stride: i64) -> Tensor {
        let spec = &self.1;
        let kind = if spec.groups > 1 { self.0.ws.kind() } else { xs.kind() };
        let (ws, bs) = (self.0.ws.to_kind(kind), self.0.bs.as_ref().map(|b| b.to_kind(kind)));
        let y =
            xs.to_kind(kind).conv2d(&ws, bs.as_ref(), [stride; 2], [spec.padding; 2], [spec.dilation; 2], spec.groups);
        y.to_kind(xs.kind())
    }
}

/// A linear layer that reports its MACs: `in_features` per output element.
#[derive(Debug)]
pub struct Linear(pub nn::Linear);

impl Deref for Linear {
    type Target = nn::Linear;
    fn deref(&self) -> &nn::Linear {
        &self.0
    }
}

impl Module for Linear {
    /// In the weights' type (fp32): the layers are small, and they end in a loss or the attention's gates, both kept
    /// in fp32 by a mixed-precision run.
    fn forward(&self, xs: &Tensor) -> Tensor {
        let y = self.0.forward(&xs.to_kind(self.0.ws.kind()));
        record(&y, self.0.ws.size()[1]);
        y
    }
}

#[cfg(test)]
mod tests {
    use super::super::flops::count_macs;
    use super::super::init::{conv2d, linear};
    use super::*;
    use crate::train::settings::{to_channels_last, vars_to_channels_last};
    use tch::Kind;

    #[test]
    fn counts_follow_the_executed_layers() {
        let vs = nn::VarStore::new(Device::Cpu);
        let dw = conv2d(&vs.root() / "dw", 8, 8, 3, ConvSpec::stride(2).padding(1).groups(8));
        let fc = linear(&vs.root() / "fc", 8, 10, true);
        let x = Tensor::randn([1, 8, 16, 16], (Kind::Float, Device::Cpu));
        let (_, macs) = count_macs(|| x.apply(&dw).mean_dim([2i64, 3].as_slice(), false, Kind::Float).apply(&fc));
        // dw: 8 channels × 8×8 outputs × 9 taps; fc: 10 × 8.
        assert_eq!(macs, 8 * 64 * 9 + 80);
        let (inner, outer) = count_macs(|| {
            let (_, inner) = count_macs(|| x.apply(&dw));
            let _ = x.apply(&dw);
            inner
        });
        assert_eq!((inner, outer), (8 * 64 * 9, 8 * 64 * 9), "an inner count does not leak into the outer one");
    }

    /// The shape whose weight gradient oneDNN's AVX2 kernel gets wrong (every time on an AVX2-only EPYC), against
    /// libtorch's reference convolution in float64, contiguous.
    #[test]
    fn strided_pointwise_conv_gradients_in_channels_last() {
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = conv2d(&vs.root() / "c", 2, 4, 1, ConvSpec::stride(2));
        vars_to_channels_last(&vs);
        let x = Tensor::randn([2, 2, 8, 8], (Kind::Float, Device::Cpu));
        let gy = to_channels_last(&Tensor::randn([2, 4, 4, 4], (Kind::Float, Device::Cpu)));
        for _ in 0..5 {
            conv.ws.shallow_clone().zero_grad();
            let y = to_channels_last(&x).apply(&conv);
            (&y * &gy).sum(Kind::Float).backward();
            let w64 = conv.ws.detach().to_kind(Kind::Double).set_requires_grad(true);
            let y64 = x.to_kind(Kind::Double).conv2d(&w64, None::<Tensor>, [2, 2], [0, 0], [1, 1], 1);
            (&y64 * gy.to_kind(Kind::Double)).sum(Kind::Double).backward();
            assert!(y.to_kind(Kind::Double).allclose(&y64, 1e-5, 1e-5, false), "output");
            assert!(conv.ws.grad().to_kind(Kind::Double).allclose(&w64.grad(), 1e-5, 1e-5, false), "weight gradient");
        }
    }
}
