//! Building blocks shared by every search space.
pub mod attention;
pub mod flops;
pub mod gated;
pub mod graph;
pub mod init;
pub mod layers;
pub mod mixed;
pub mod ops;
pub mod weights;

pub use attention::SeAttention;
pub use gated::GatedSum;
pub use graph::{Export, Graph, Layer, Value};
pub use mixed::{Candidate, MixedOp, MixedOutput, Node, Shared};
pub use ops::AfterRelu;

/// The type sums over maps of type `kind` are taken in: fp32 for the reduced-precision types, else `kind` itself.
pub fn compute_kind(kind: tch::Kind) -> tch::Kind {
    match kind {
        tch::Kind::BFloat16 | tch::Kind::Half => tch::Kind::Float,
        other => other,
    }
}
