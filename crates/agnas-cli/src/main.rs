//! `agnas`: the command line. It parses, calls the library and reports; the library decides.
/// `print!` to stdout, where a closed pipe (`agnas … | head`) ends the output quietly instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(&format!($($arg)*))
    };
}

/// `println!` through [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_stdout(&format!("{}\n", format!($($arg)*)))
    };
}

mod bench;
mod models;
mod run_args;

pub(crate) fn write_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing to stdout: {e}");
        }
    }
}

use agnas::config::{Preset, SearchConfig};
use agnas::data::DataFormat;
use agnas::report::progress::ProgressMode;
use agnas::search::{self, SearchRun};
use agnas::space::nb201::{bench as nb201_bench, Aggregation};
use agnas::space::SpaceName;
use agnas::train::Start;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use run_args::{set_flags, RunArgs, RunSettings};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "agnas", version, about = "Attention-guided neural architecture search (AGNAS, ICML 2022)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Search an architecture: train the attention supernet, accumulate attention on held-out data, derive.
    Search(Box<SearchArgs>),
    /// The NAS-Bench-201 table embedded in agnas.
    #[command(subcommand)]
    Bench201(Bench201Command),
    /// Retrain a genotype's evaluation network from scratch (DARTS space: NetworkCIFAR).
    Train(Box<models::TrainArgs>),
    /// Top-1/top-5 accuracy and loss of a retrained network on a data set.
    Eval(models::EvalArgs),
    /// Parameter count (without the auxiliary head) and MACs of an evaluation network.
    Params(models::ParamsArgs),
    /// Show, convert or draw genotypes.
    #[command(subcommand)]
    Genotype(models::GenotypeCommand),
    /// Speed measurements.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Subcommand)]
enum Bench201Command {
    /// Print the benchmark record of an architecture string or index as JSON.
    Query {
        /// `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` or an index 0..15624.
        arch: String,
    },
}

#[derive(Args)]
struct SearchArgs {
    /// Search space: nb201 or darts (default: the config file's, else nb201).
    #[arg(long, group = "config_flags")]
    space: Option<SpaceName>,
    /// Training images: CIFAR-10/100 binary folder, class folders (or a .tar.gz of them), or IDX files.
    /// Without it, the CIFAR-10 subset embedded in agnas is used with the `embedded` preset.
    #[arg(long, group = "config_flags")]
    data: Option<PathBuf>,
    /// Starting configuration: paper, embedded or smoke (default: paper with --data, embedded without).
    #[arg(long, group = "config_flags")]
    preset: Option<Preset>,
    #[command(flatten)]
    run: RunArgs,
    #[arg(long, group = "config_flags")]
    lr_min: Option<f64>,
    #[arg(long, group = "config_flags")]
    momentum: Option<f64>,
    #[arg(long, group = "config_flags")]
    weight_decay: Option<f64>,
    /// Nesterov momentum (the AutoDL NB201 recipe uses it with weight decay 5e-4).
    #[arg(long, group = "config_flags")]
    nesterov: bool,
    /// Global gradient-norm clip (0 = off).
    #[arg(long, group = "config_flags")]
    grad_clip: Option<f64>,
    /// Supernet channels C (of the chosen space).
    #[arg(long, group = "config_flags")]
    channels: Option<i64>,
    /// DARTS supernet cells.
    #[arg(long, group = "config_flags")]
    layers: Option<usize>,
    /// NB201 search cells per stage N.
    #[arg(long, group = "config_flags")]
    cells_per_stage: Option<i64>,
    /// SE reduction ratio of the attention modules.
    #[arg(long, group = "config_flags")]
    attention_ratio: Option<i64>,
    /// Share of the images that trains the supernet (the rest is held out for the importances).
    #[arg(long, group = "config_flags")]
    split: Option<f64>,
    /// Augment the held-out images during the importance pass, as the official code does.
    #[arg(long, group = "config_flags")]
    augment_heldout: bool,
    /// Run the held-out importance pass after every epoch (default: after the last only).
    #[arg(long, group = "config_flags")]
    heldout_every_epoch: bool,
    /// Never let `none` win an edge.
    #[arg(long, group = "config_flags")]
    no_none: bool,
    /// How cells' importances combine: all-cells or first-stage.
    #[arg(long, group = "config_flags", value_parser = parse_aggregation)]
    aggregation: Option<Aggregation>,
}

pub(crate) fn parse_format(s: &str) -> Result<DataFormat> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .with_context(|| format!("unknown format `{s}` (auto, cifar10, cifar100, folder, idx)"))
}

fn parse_aggregation(s: &str) -> Result<Aggregation> {
    serde_json::from_value(serde_json::Value::String(s.replace('-', "_")))
        .with_context(|| format!("unknown aggregation `{s}` (all-cells, first-stage)"))
}

impl SearchArgs {
    /// Preset ← file ← flags.
    fn config(&self) -> Result<SearchConfig> {
        let preset = self.preset.unwrap_or(if self.data.is_some() { Preset::Paper } else { Preset::Embedded });
        let mut c = SearchConfig::from_preset_and_file(preset, self.space, self.run.config.as_deref())?;
        c.apply(&self.run);
        set_flags!(self, c; lr_min => train.lr_min, momentum => train.momentum, weight_decay => train.weight_decay,
             grad_clip => train.grad_clip, cells_per_stage => nb201.cells_per_stage, layers => darts.layers,
             split => data.split, aggregation => derive.aggregation);
        if self.data.is_some() {
            c.data.path = self.data.clone();
        }
        match c.space {
            SpaceName::Nb201 => {
                c.nb201.channels = self.channels.unwrap_or(c.nb201.channels);
                c.nb201.attention_ratio = self.attention_ratio.unwrap_or(c.nb201.attention_ratio);
            }
            SpaceName::Darts => {
                c.darts.channels = self.channels.unwrap_or(c.darts.channels);
                c.darts.attention_ratio = self.attention_ratio.unwrap_or(c.darts.attention_ratio);
            }
        }
        c.train.nesterov |= self.nesterov;
        c.importance.augment |= self.augment_heldout;
        c.importance.every_epoch |= self.heldout_every_epoch;
        c.derive.allow_none &= !self.no_none;
        Ok(c)
    }
}

fn search(args: &SearchArgs) -> Result<()> {
    let start = match &args.run.resume {
        Some(dir) => Start::Resume(dir.clone()),
        None => {
            let config = args.config()?;
            let out = args.run.out_or_default(&format!("{}-seed{}", config.space.as_str(), config.seed));
            Start::New { config, out }
        }
    };
    let out = start.out().to_path_buf();
    let result =
        search::run(SearchRun { start, progress: ProgressMode::Auto, stop_after_steps: args.run.stop_after_steps })?;
    outln!("{}", serde_json::to_string_pretty(&result)?);
    eprintln!("found {}", result.arch);
    if let Some(record) = result.extra.get("bench201").filter(|r| !r.is_null()) {
        let acc = |key: &str| record.get(key).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        eprintln!(
            "NAS-Bench-201 (200 epochs): CIFAR-10 test {:.2} %, CIFAR-100 test {:.2} %, ImageNet16-120 test {:.2} %",
            acc("c10_test"),
            acc("c100_test"),
            acc("in16_test")
        );
    }
    eprintln!("run folder: {}", out.display());
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Search(args) => search(&args),
        Command::Bench201(Bench201Command::Query { arch }) => {
            let record = nb201_bench::query(&arch)?;
            outln!("{}", serde_json::to_string_pretty(record)?);
            Ok(())
        }
        Command::Train(args) => models::train(&args),
        Command::Eval(args) => models::eval(&args),
        Command::Params(args) => models::params(&args),
        Command::Genotype(cmd) => models::genotype(&cmd),
        Command::Bench(cmd) => bench::run(cmd),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    agnas::train::allocator::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
