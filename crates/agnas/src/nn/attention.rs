//! The AGNAS attention: one squeeze-and-excitation module per decision point over all candidates' outputs.
//! [`crate::nn::MixedOp`] applies it.
use super::init::linear;
use super::layers::Linear;
use tch::nn;
use tch::Tensor;

/// Squeeze-and-excitation over `channels` channels: GAP → FC → ReLU → FC → sigmoid, both FCs without bias
/// (`attention.fc.0`, `attention.fc.2` as in `nn.Sequential(Linear, ReLU, Linear, Sigmoid)`).
#[derive(Debug)]
pub struct SeAttention {
    fc1: Linear,
    fc2: Linear,
}

impl SeAttention {
    /// The hidden width is `channels / ratio` (floor), as `channels // ratio` in PyTorch.
    pub fn new(p: nn::Path, channels: i64, ratio: i64) -> Self {
        let fc = p / "fc";
        let hidden = (channels / ratio).max(1);
        SeAttention { fc1: linear(&fc / "0", channels, hidden, false), fc2: linear(&fc / "2", hidden, channels, false) }
    }

    /// Gates of shape (B, channels) from an already squeezed (B, channels) input.
    pub fn excite(&self, squeezed: &Tensor) -> Tensor {
        squeezed.apply(&self.fc1).relu().apply(&self.fc2).sigmoid()
    }

    /// Gates of shape (B, channels) from a (B, channels, H, W) feature map.
    pub fn gates(&self, xs: &Tensor) -> Tensor {
        self.excite(&xs.mean_dim([2i64, 3].as_slice(), false, xs.kind()))
    }
}
