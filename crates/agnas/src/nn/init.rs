//! Layer constructors with PyTorch's default initialisation.
//!
//! tch's defaults differ from PyTorch's (Kaiming-uniform with the ReLU gain for weights, U(0,1) for BN weights),
//! and training dynamics depend on the initial scale, so every layer of this crate is made here.
use super::layers::{Conv2d, ConvSpec, Linear};
use tch::nn::{self, Init};

/// PyTorch's `kaiming_uniform_(a=sqrt(5))` and its bias rule both come down to U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
fn fan_in_uniform(fan_in: i64) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -bound, up: bound }
}

/// PyTorch's `BatchNorm2d` epsilon, which every batch norm here uses (the exporters write it).
pub const BN_EPS: f64 = 1e-5;

/// `nn.Conv2d(c_in, c_out, k, ...)` with PyTorch's initialisation.
pub fn conv2d(p: nn::Path, c_in: i64, c_out: i64, k: i64, spec: ConvSpec) -> Conv2d {
    let init = fan_in_uniform(c_in / spec.groups * k * k);
    conv2d_init(p, c_in, c_out, k, spec, init, init)
}

/// `nn.Conv2d` initialised as the macro supernet does: N(0, sqrt(2 / (k·k·c_out))), depthwise convolutions too.
pub fn conv2d_fan_out_normal(p: nn::Path, c_in: i64, c_out: i64, k: i64, spec: ConvSpec) -> Conv2d {
    let stdev = (2.0 / (k * k * c_out) as f64).sqrt();
    conv2d_init(p, c_in, c_out, k, spec, Init::Randn { mean: 0.0, stdev }, Init::Const(0.0))
}

fn conv2d_init(p: nn::Path, c_in: i64, c_out: i64, k: i64, spec: ConvSpec, ws_init: Init, bs_init: Init) -> Conv2d {
    let cfg = nn::ConvConfig {
        stride: spec.stride,
        padding: spec.padding,
        dilation: spec.dilation,
        groups: spec.groups,
        bias: spec.bias,
        ws_init,
        bs_init,
        ..Default::default()
    };
    Conv2d(nn::conv2d(p, c_in, c_out, k, cfg), spec)
}

/// `nn.Linear(c_in, c_out, bias)` with PyTorch's initialisation.
pub fn linear(p: nn::Path, c_in: i64, c_out: i64, bias: bool) -> Linear {
    let init = fan_in_uniform(c_in);
    Linear(nn::linear(p, c_in, c_out, nn::LinearConfig { ws_init: init, bs_init: Some(init), bias }))
}

/// `nn.BatchNorm2d(c, affine=affine)`: weight 1, bias 0, running statistics 0/1, momentum 0.1.
pub fn batch_norm2d(p: nn::Path, c: i64, affine: bool) -> nn::BatchNorm {
    let cfg = nn::BatchNormConfig {
        affine,
        ws_init: Init::Const(1.0),
        bs_init: Init::Const(0.0),
        eps: BN_EPS,
        ..Default::default()
    };
    nn::batch_norm2d(p, c, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Uniform on ±b: all values within b and some near it; with many values, also the standard deviation b/√3.
    fn assert_uniform(t: &tch::Tensor, bound: f64, what: &str) {
        let max = t.abs().max().double_value(&[]);
        assert!(max <= bound + 1e-7, "{what}: max {max} above bound {bound}");
        // P(all of ≥ 128 draws below 0.9 b) < 1e-5.
        assert!(max >= 0.9 * bound, "{what}: max {max} far below bound {bound}");
        if t.numel() >= 10_000 {
            // Relative standard error of the std is about 1/sqrt(2n) < 0.8 %.
            let std = t.to_kind(Kind::Double).std(true).double_value(&[]);
            let want = bound / 3f64.sqrt();
            assert!((std - want).abs() < 0.05 * want, "{what}: std {std}, PyTorch's default gives {want}");
        }
    }

    #[test]
    fn layers_start_as_in_pytorch() {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        // fan_in = 64/4 groups × 3×3 = 144.
        let conv = conv2d(&root / "conv", 64, 128, 3, ConvSpec::default().groups(4).bias(true));
        assert_uniform(&conv.ws, 1.0 / 144f64.sqrt(), "conv weight");
        assert_uniform(conv.bs.as_ref().unwrap(), 1.0 / 144f64.sqrt(), "conv bias");
        let fc = linear(&root / "fc", 400, 300, true); // 120,000 weights, 300 biases
        assert_uniform(&fc.ws, 1.0 / 20.0, "linear weight");
        assert_uniform(fc.bs.as_ref().unwrap(), 1.0 / 20.0, "linear bias");
        let bn = batch_norm2d(&root / "bn", 8, true);
        assert_eq!(bn.ws.as_ref().unwrap().mean(Kind::Float).double_value(&[]), 1.0);
        assert_eq!(bn.bs.as_ref().unwrap().abs().sum(Kind::Float).double_value(&[]), 0.0);
        assert!(batch_norm2d(&root / "bn2", 8, false).ws.is_none());
    }
}
