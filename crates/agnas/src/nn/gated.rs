//! The AGNAS gated sum of one decision point, the one place every space's candidates are squeezed, excited and
//! summed (a fused kernel or another attention module goes here).
//!
//! The official code concatenates the candidates' outputs, runs the SE module on the concatenation and sums the
//! gated channel groups. This computes the same values without materialising the concatenation: the squeeze of a
//! concatenation is the concatenation of the squeezes, and the gated outputs are added in place (`addcmul_`) into
//! the sum, so neither the per-candidate products nor a per-decision sum exist as tensors.
use super::attention::SeAttention;
use tch::nn;
use tch::Tensor;

/// Global average pooling (B, C, H, W) → (B, C), as a sum and a division of the small result: the backward then
/// broadcasts the gradient as a view instead of writing a full-size tensor (`mean`'s backward divides a full-size
/// expanded gradient).
pub fn squeeze(xs: &Tensor) -> Tensor {
    let size = xs.size();
    xs.sum_dim_intlist([2i64, 3].as_slice(), false, xs.kind()) / (size[2] * size[3]) as f64
}

/// A candidate's branch output with its squeeze; `None` for a branch of zeros (`none`, or an identity whose output
/// is all [`Common`] term), which costs nothing.
pub type Branch = Option<(Tensor, Tensor)>;

/// A term that every candidate's output holds besides its branch (the input of a residual block, which is also
/// the whole output of its identity candidate), with its squeeze. Its gated copies fold into one product with the
/// sum of the gates.
pub struct Common<'a> {
    pub value: &'a Tensor,
    pub squeezed: &'a Tensor,
}

/// One SE module over `candidates` × `channels` channels, and the gated sum it weighs.
#[derive(Debug)]
pub struct GatedSum {
    attention: SeAttention,
    candidates: i64,
    channels: i64,
}

impl GatedSum {
    /// The SE module's parameters are under `p` (`…/attention`, or the official macro space's `attention_layer`).
    pub fn new(p: nn::Path, candidates: i64, channels: i64, ratio: i64) -> Self {
        GatedSum { attention: SeAttention::new(p, candidates * channels, ratio), candidates, channels }
    }

    pub fn attention(&self) -> &SeAttention {
        &self.attention
    }

    /// Adds Σₖ gateₖ ⊙ outputₖ into `sum` (which it creates when `None`) and returns the gates, shape (batch,
    /// candidates, channels). `branches` has one entry per candidate; at least one of them, or `common`, is not
    /// zero.
    pub fn accumulate(&self, branches: &[Branch], common: Option<Common>, sum: &mut Option<Tensor>) -> Tensor {
        let like = branches.iter().flatten().map(|(_, sq)| sq).next().or(common.as_ref().map(|s| s.squeezed));
        let like = like.expect("a decision point has a candidate that is not zero");
        let batch = like.size()[0];
        let squeezed: Vec<Tensor> = branches
            .iter()
            .map(|b| match (b, &common) {
                (Some((_, sq)), Some(s)) => sq + s.squeezed,
                (Some((_, sq)), None) => sq.shallow_clone(),
                (None, Some(s)) => s.squeezed.shallow_clone(),
                (None, None) => Tensor::zeros([batch, self.channels], (like.kind(), like.device())),
            })
            .collect();
        let gates = self.attention.excite(&Tensor::cat(&squeezed, 1));
        let per_candidate = gates.view([batch, self.candidates, self.channels]);
        for (k, (out, _)) in branches.iter().enumerate().filter_map(|(k, b)| Some((k, b.as_ref()?))) {
            let gate = per_candidate.select(1, k as i64).unsqueeze(-1).unsqueeze(-1);
            match sum {
                Some(s) => {
                    let _ = s.addcmul_(out, &gate);
                }
                None => *sum = Some(out * gate),
            }
        }
        if let Some(s) = common {
            let scale = per_candidate.sum_dim_intlist(1, false, gates.kind()).unsqueeze(-1).unsqueeze(-1);
            match sum {
                Some(total) => {
                    let _ = total.addcmul_(s.value, &scale);
                }
                None => *sum = Some(s.value * scale),
            }
        }
        per_candidate
    }
}
