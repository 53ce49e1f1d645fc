//! Optimisation: SGD, schedules, clipping, and checkpoints of a training run.
pub mod checkpoint;
pub mod optim;

pub use optim::{CosineSchedule, Sgd};
