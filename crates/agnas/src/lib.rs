//! AGNAS: attention-guided micro and macro architecture search (Sun et al., ICML 2022) on libtorch.
pub mod baseline;
pub mod config;
pub mod data;
pub mod dist;
mod error;
pub mod export;
pub mod nn;
pub mod registry;
pub mod report;
pub mod retrain;
pub mod runs;
pub mod search;
pub mod space;
pub mod train;

pub use error::{Error, Result, WeightsCause};
