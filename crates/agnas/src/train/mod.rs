//! Optimisation: SGD, schedules, clipping, and checkpoints of a training run.
pub mod allocator;
pub mod checkpoint;
pub mod metrics;
pub mod optim;
pub mod schedule;

pub use metrics::{Means, Totals};
pub use optim::{CosineSchedule, Sgd};
pub use schedule::StepSchedule;
