//! The training skeleton and what it is made of: SGD, schedules, clipping, checkpoints, run settings.
pub mod allocator;
pub mod checkpoint;
pub mod metrics;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod settings;

pub use metrics::{Means, Totals};
pub use optim::{CosineSchedule, LrSchedule, Sgd};
pub use run::{evaluate, EpochEnd, History, Job, Run, RunConfig, Start, StepContext, Trainer};
pub use schedule::StepSchedule;
pub use settings::{DeviceChoice, MemoryFormat, TrainConfig};
