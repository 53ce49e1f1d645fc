//! Building blocks shared by every search space.
pub mod attention;
pub mod init;
pub mod ops;

pub use attention::{Candidate, MixedOp, MixedOutput, SeAttention};
