//! Flags shared by `agnas search` and `agnas train`: the run folder, the machine, and how the network trains.
use agnas::config::{RetrainConfig, SearchConfig};
use agnas::data::DataFormat;
use agnas::dist::{Dist, DistChoice};
use agnas::space::Space;
use agnas::train::{DeviceChoice, MemoryFormat, Start};
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
    #[arg(long, group = "config_flags", value_parser = crate::parse_named::<DataFormat>)]
    format: Option<DataFormat>,
    /// Seed of the weights, the data split and order, and the augmentation.
    #[arg(long, group = "config_flags")]
    seed: Option<u64>,
    /// auto, cpu or cuda.
    #[arg(long, group = "config_flags", value_parser = crate::parse_named::<DeviceChoice>)]
    device: Option<DeviceChoice>,
    /// CPU threads for libtorch.
    #[arg(long, group = "config_flags")]
    threads: Option<usize>,
    /// Memory layout: auto (channels-last on the CPU), channels_last or contiguous.
    #[arg(long, group = "config_flags", value_parser = crate::parse_named::<MemoryFormat>)]
    memory_format: Option<MemoryFormat>,
    /// Training epochs.
    #[arg(long, group = "config_flags")]
    epochs: Option<usize>,
    /// Images per training step (the global batch; the learning rate is defined for it).
    #[arg(long, group = "config_flags")]
    batch_size: Option<usize>,
    /// Forward-backward passes per step and rank, on equal parts of its batch (batch-norm statistics per part; one
    /// process with M trains as M ranks would).
    #[arg(long, group = "config_flags")]
    micro_batches: Option<usize>,
    /// Initial SGD learning rate.
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
    /// Data parallelism: auto (the ranks that torchrun, agnas launch, mpirun or srun describe in the environment),
    /// none, c10d (Gloo on the CPU, NCCL on GPUs) or mpi.
    #[arg(long, default_value = "auto", value_parser = crate::parse_named::<DistChoice>)]
    pub dist: DistChoice,
    /// Seconds a rank waits for its peers (in the rendezvous or a collective) before the run ends with an error
    /// naming the ranks that stopped.
    #[arg(long, default_value_t = 300)]
    pub dist_timeout: u64,
}

/// `config.field = flag` for every flag given (`Option` fields of `args`).
macro_rules! set_flags {
    ($args:expr, $c:expr; $($flag:ident => $($field:ident).+),* $(,)?) => {
        $(if let Some(v) = $args.$flag.clone() { $c.$($field).+ = v; })*
    };
}
pub(crate) use set_flags;

/// Configurations that take [`RunArgs`]: the search's and the retrain's, whose fields have the same names.
pub trait RunSettings {
    /// Lays the given flags over the configuration.
    fn apply(&mut self, args: &RunArgs);
}

macro_rules! run_settings {
    ($($t:ident),*) => {$(
        impl<S: Space> RunSettings for $t<S> {
            fn apply(&mut self, args: &RunArgs) {
                set_flags!(args, self; seed => seed, device => device, threads => threads,
                           memory_format => memory_format, epochs => train.epochs, batch_size => train.batch_size,
                           micro_batches => train.micro_batches,
                           lr => train.lr, cutout => train.augment.cutout, per_class => data.per_class,
                           workers => data.workers, checkpoint_every => train.checkpoint_every,
                           format => data.format);
                self.train.lr_step_at_epoch_start |= args.official_lr_schedule;
            }
        }
    )*};
}
run_settings!(SearchConfig, RetrainConfig);

impl RunArgs {
    /// The run `--resume` names, or a new one of the configuration and name `new` gives, in `--out`.
    pub fn start<C>(&self, new: impl FnOnce() -> anyhow::Result<(C, String)>) -> anyhow::Result<Start<C>> {
        Ok(match &self.resume {
            Some(dir) => Start::Resume(dir.clone()),
            None => {
                let (config, name) = new()?;
                Start::New { config, out: self.out_or_default(&name) }
            }
        })
    }

    /// Joins the other ranks of a data-parallel run (one process: at once). NCCL carries the collectives when the
    /// run trains on GPUs (`--device cuda`, or `auto` on a machine with one), Gloo or MPI otherwise.
    pub fn connect(&self) -> anyhow::Result<Dist> {
        let gpu = match self.device {
            Some(DeviceChoice::Cpu) => false,
            _ => tch::Cuda::is_available(),
        };
        let device = if gpu { tch::Device::Cuda(0) } else { tch::Device::Cpu };
        Dist::connect(self.dist, device, std::time::Duration::from_secs(self.dist_timeout))
    }

    /// The run folder: `--out`, or `runs/<name>-<unix seconds>`.
    pub fn out_or_default(&self, name: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            PathBuf::from(format!("runs/{name}-{secs}"))
        })
    }
}
