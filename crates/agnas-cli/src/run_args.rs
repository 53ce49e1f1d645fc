//! Flags of every command that starts a run (`search`, `train`, `baseline random`): the run folder and the
//! ranks. The settings of the run itself are made from the library's tables (`flags.rs`).
use agnas::config::Overrides;
use agnas::dist::{Dist, DistChoice};
use agnas::report::progress::ProgressMode;
use agnas::train::{Begin, Launch};
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
    /// Print the configuration the flags resolve to (as the run folder's config.toml would hold it) and exit.
    #[arg(long, conflicts_with = "resume")]
    pub print_config: bool,
    /// Stop after this many training steps, as if killed (to test --resume).
    #[arg(long, hide = true)]
    pub stop_after_steps: Option<u64>,
}

/// Flags of the commands that train as data-parallel ranks (`search`, `train`; `baseline random` runs its
/// candidates in one process).
#[derive(Args)]
pub struct DistArgs {
    /// Data parallelism: auto (the ranks that torchrun, agnas launch, mpirun or srun describe in the environment),
    /// none, c10d (Gloo on the CPU, NCCL on GPUs) or mpi.
    #[arg(long, default_value = "auto", value_parser = crate::parse_named::<DistChoice>)]
    pub dist: DistChoice,
    /// Seconds a rank waits for its peers (in the rendezvous or a collective) before the run ends with an error
    /// naming the ranks that stopped.
    #[arg(long, default_value_t = 300)]
    pub dist_timeout: u64,
}

impl RunArgs {
    /// With `--print-config`: prints the configuration `resolve` gives, and says that the command is done.
    pub fn printed_config(&self, resolve: impl FnOnce() -> agnas::Result<String>) -> anyhow::Result<bool> {
        if self.print_config {
            out!("{}", resolve()?);
        }
        Ok(self.print_config)
    }

    /// The run these flags ask for, with the ranks it runs with; `given` are the settings flags (with `--resume`
    /// only those of where the run executes).
    pub fn launch(&self, dist: Dist, given: &Overrides) -> Launch {
        let begin = match &self.resume {
            Some(dir) => Begin::Resume { dir: dir.clone(), machine: given.clone() },
            None => Begin::New { out: self.out.clone() },
        };
        Launch { begin, progress: ProgressMode::Auto, stop_after_steps: self.stop_after_steps, dist }
    }
}

impl DistArgs {
    /// Joins the other ranks of a data-parallel run (one process: at once). NCCL carries the collectives when the
    /// run trains on GPUs (`--device cuda`, or `auto` on a machine with one), Gloo or MPI otherwise.
    pub fn connect(&self, given: &Overrides) -> anyhow::Result<Dist> {
        let cpu = given.get("device").and_then(|v| v.as_str()) == Some("cpu");
        let device = if !cpu && tch::Cuda::is_available() { tch::Device::Cuda(0) } else { tch::Device::Cpu };
        Ok(Dist::connect(self.dist, device, std::time::Duration::from_secs(self.dist_timeout))?)
    }
}
