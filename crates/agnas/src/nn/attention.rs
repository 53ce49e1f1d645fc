//! The AGNAS attention: one squeeze-and-excitation module per decision point over all candidates' outputs.
use super::flops::Linear;
use super::init::linear;
use tch::nn::{self, ModuleT};
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

/// One candidate of a [`MixedOp`]: a module, or `none`, whose output is all zeros and so costs no work.
#[derive(Debug)]
pub enum Candidate {
    Zero,
    Op(Box<dyn ModuleT>),
}

/// The output of a [`MixedOp`]: the gated sum and the per-candidate importance of this forward.
pub struct MixedOutput {
    pub out: Tensor,
    /// Σ over batch and the candidate's channels of its gates, shape (n_candidates,); detached, on the device.
    pub importance: Tensor,
}

/// A decision point: all candidates run, one SE module gates their channels, the gated outputs are summed.
///
/// Equal to `sum_k slice_k(cat(outs) * SE(cat(outs)))` of the official code, without materialising the
/// concatenation: the squeeze of a concatenation is the concatenation of the squeezes, and a `none`
/// candidate's squeeze is zero.
#[derive(Debug)]
pub struct MixedOp {
    candidates: Vec<Candidate>,
    attention: SeAttention,
    channels: i64,
}

impl MixedOp {
    /// `candidates` are built by the caller under `p/_ops/<k>`; the attention lives at `p/attention`.
    pub fn new(p: nn::Path, candidates: Vec<Candidate>, channels: i64, ratio: i64) -> Self {
        let n = candidates.len() as i64;
        MixedOp { attention: SeAttention::new(p / "attention", n * channels, ratio), candidates, channels }
    }

    pub fn forward_t(&self, xs: &Tensor, train: bool) -> MixedOutput {
        let outs: Vec<Option<Tensor>> = self
            .candidates
            .iter()
            .map(|c| match c {
                Candidate::Zero => None,
                Candidate::Op(op) => Some(op.forward_t(xs, train)),
            })
            .collect();
        let batch = xs.size()[0];
        let zeros = Tensor::zeros([batch, self.channels], (xs.kind(), xs.device()));
        let squeezed: Vec<Tensor> = outs
            .iter()
            .map(|o| match o {
                Some(o) => o.mean_dim([2i64, 3].as_slice(), false, o.kind()),
                None => zeros.shallow_clone(),
            })
            .collect();
        let gates = self.attention.excite(&Tensor::cat(&squeezed, 1));
        let n = self.candidates.len() as i64;
        let per_candidate = gates.view([batch, n, self.channels]);
        let importance = per_candidate.detach().sum_dim_intlist([0i64, 2].as_slice(), false, gates.kind());
        let out = outs
            .iter()
            .enumerate()
            .filter_map(|(k, o)| o.as_ref().map(|o| o * per_candidate.select(1, k as i64).unsqueeze(-1).unsqueeze(-1)))
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| Tensor::zeros_like(xs));
        MixedOutput { out, importance }
    }
}
