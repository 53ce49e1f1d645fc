//! Optimisation: SGD, schedules, clipping, and checkpoints of a training run.
pub mod checkpoint;
pub mod metrics;
pub mod optim;

pub use metrics::{Means, Totals};
pub use optim::{CosineSchedule, Sgd};
