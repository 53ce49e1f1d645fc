//! The training skeleton and what it is made of: SGD, schedules, clipping, checkpoints, run settings.
pub mod allocator;
pub mod checkpoint;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod settings;

pub use loss::cross_entropy;
pub use metrics::{Means, Totals};
pub use optim::{schedule, CosineSchedule, LinearSchedule, LrSchedule, Sgd};
pub use run::{
    default_out, evaluate, Begin, EpochEnd, Finished, History, Job, Launch, Launched, Run, RunConfig, Start,
    StepContext, Trainer,
};
pub use schedule::StepSchedule;
pub use settings::{ClipBy, DecayRule, DeviceChoice, MemoryFormat, Precision, ScheduleKind, TrainConfig};
