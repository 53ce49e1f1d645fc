//! Building blocks shared by every search space.
pub mod attention;
pub mod flops;
pub mod init;
pub mod mixed;
pub mod ops;
pub mod weights;

pub use attention::SeAttention;
pub use mixed::{AfterRelu, Candidate, MixedOp, MixedOutput, Node, Shared};

use tch::{nn::VarStore, Tensor};

/// The same values with channels-last strides (NHWC in memory, NCHW in shape): libtorch's CPU convolutions,
/// BN and pools run much faster on it for the narrow layers of cell supernets. tch has no memory-format
/// argument, so the layout is made by permuting to NHWC, compacting, and permuting the view back.
pub fn to_channels_last(xs: &Tensor) -> Tensor {
    if xs.dim() != 4 {
        return xs.shallow_clone();
    }
    xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Puts every 4-D variable (conv weights) of `vs` into channels-last layout, in place.
pub fn vars_to_channels_last(vs: &VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                v.set_data(&to_channels_last(&v));
            }
        }
    });
}
