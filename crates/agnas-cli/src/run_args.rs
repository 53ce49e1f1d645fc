//! Flags shared by `agnas search` and `agnas train`: the run folder, the machine, and how the network trains.
use agnas::config::{DataConfig, DataFormat, DeviceChoice, MemoryFormat, TrainConfig};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("config_flags").multiple(true)))]
pub struct RunArgs {
    /// TOML file laid over the preset (same keys as the run folder's config.toml).
    #[arg(long, group = "config_flags")]
    pub config: Option<PathBuf>,
    /// Run folder (default: under runs/, named after the run and the time).
    #[arg(long, group = "config_flags")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder after an interruption, with its own config.
    #[arg(long, conflicts_with = "config_flags")]
    pub resume: Option<PathBuf>,
    /// Format of --data (default: guessed).
    #[arg(long, group = "config_flags", value_parser = crate::parse_format)]
    format: Option<DataFormat>,
    #[arg(long, group = "config_flags")]
    seed: Option<u64>,
    /// auto, cpu or cuda.
    #[arg(long, group = "config_flags")]
    device: Option<DeviceChoice>,
    /// CPU threads for libtorch.
    #[arg(long, group = "config_flags")]
    threads: Option<usize>,
    /// Memory layout: auto (channels-last on the CPU), channels_last or contiguous.
    #[arg(long, group = "config_flags")]
    memory_format: Option<MemoryFormat>,
    #[arg(long, group = "config_flags")]
    epochs: Option<usize>,
    #[arg(long, group = "config_flags")]
    batch_size: Option<usize>,
    #[arg(long, group = "config_flags")]
    lr: Option<f64>,
    /// Cutout length for training images (0 = off).
    #[arg(long, group = "config_flags")]
    cutout: Option<usize>,
    /// Images per class to use (balanced subset; 0 = all).
    #[arg(long, group = "config_flags")]
    per_class: Option<usize>,
    /// Data loading threads.
    #[arg(long, group = "config_flags")]
    workers: Option<usize>,
    /// Steps between mid-epoch checkpoints (0 = per epoch only).
    #[arg(long, group = "config_flags")]
    checkpoint_every: Option<usize>,
    /// Step the LR schedule at epoch start, as the official code does.
    #[arg(long, group = "config_flags")]
    official_lr_schedule: bool,
    /// Stop after this many training steps, as if killed (to test --resume).
    #[arg(long, hide = true)]
    pub stop_after_steps: Option<u64>,
}

/// The parts of a search or retrain configuration that [`RunArgs`] set.
pub struct RunConfig<'a> {
    pub seed: &'a mut u64,
    pub device: &'a mut DeviceChoice,
    pub threads: &'a mut usize,
    pub memory_format: &'a mut MemoryFormat,
    pub data: &'a mut DataConfig,
    pub train: &'a mut TrainConfig,
}

impl RunArgs {
    /// Lays the given flags over `c`.
    pub fn apply(&self, c: RunConfig<'_>) {
        fn set<T: Clone>(flag: &Option<T>, field: &mut T) {
            if let Some(v) = flag {
                *field = v.clone();
            }
        }
        set(&self.seed, c.seed);
        set(&self.device, c.device);
        set(&self.threads, c.threads);
        set(&self.memory_format, c.memory_format);
        set(&self.epochs, &mut c.train.epochs);
        set(&self.batch_size, &mut c.train.batch_size);
        set(&self.lr, &mut c.train.lr);
        set(&self.cutout, &mut c.train.augment.cutout);
        set(&self.per_class, &mut c.data.per_class);
        set(&self.workers, &mut c.data.workers);
        set(&self.checkpoint_every, &mut c.train.checkpoint_every);
        set(&self.format, &mut c.data.format);
        c.train.lr_step_at_epoch_start |= self.official_lr_schedule;
    }

    /// The run folder: `--out`, or `runs/<name>-<unix seconds>`.
    pub fn out_or_default(&self, name: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            PathBuf::from(format!("runs/{name}-{secs}"))
        })
    }
}
