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
mod export;
mod flags;
mod latency;
mod launch;
mod models;
mod run_args;

/// A finished run's result: as JSON where stdout goes to a program (a pipe, a file), else only where it is, so that
/// the summary above stays on the screen.
pub(crate) fn print_result(result: &impl serde::Serialize, out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        eprintln!("result: {}", out.join("result.json").display());
    } else {
        outln!("{}", serde_json::to_string_pretty(result)?);
    }
    Ok(())
}

pub(crate) fn write_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing to stdout: {e}");
        }
    }
}

use agnas::config::{Overrides, Preset, Recipe};
use agnas::registry::resolve::{resolve, Source};
use agnas::registry::{self, AnySpace, Configuration, Seed};
use agnas::runs;
use agnas::search::SearchResult;
use agnas::space::nb201::bench as nb201_bench;
use agnas::space::SpaceName;
use agnas::train::Finished;
use anyhow::{Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use flags::Settings;
use run_args::{DistArgs, RunArgs};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "agnas", version, about = "Attention-guided neural architecture search (AGNAS, ICML 2022)")]
struct Cli {
    /// Only warnings and errors on stderr. (RUST_LOG overrides -q and -v, e.g. RUST_LOG=agnas::search=debug.)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Debug messages on stderr too.
    #[arg(short, long, global = true)]
    verbose: bool,
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
    /// Retrain a genotype's evaluation network from scratch.
    Train(Box<models::TrainArgs>),
    /// Top-1/top-5 accuracy and loss of a retrained network on a data set.
    Eval(models::EvalArgs),
    /// Write an evaluation network (a retrained run, a weights file, or a genotype with fresh weights) as a standard
    /// ONNX model or as one standalone PyTorch file with its weights.
    #[command(mut_arg("genotype", |a| a.help(
        "For a weights file or fresh weights: the genotype, as `agnas train --genotype` takes it")))]
    #[command(mut_arg("image_size", |a| a.help(
        "Input side in pixels of the graph (default: a run's evaluation crop, else the space's benchmark: 32 or 224)")))]
    Export(Box<export::ExportArgs>),
    /// Parameter count (without the auxiliary head) and MACs of an evaluation network.
    #[command(mut_arg("genotype", |a| a.help(
        "The genotype, as `agnas train --genotype` takes it (default: the space's released one; without --space, \
         the released AGNAS cells, darts)")))]
    #[command(mut_arg("image_size", |a| a.help("Input side in pixels (default: the space's benchmark: 32 or 224)")))]
    Params(models::ParamsArgs),
    /// Show, convert or draw genotypes.
    #[command(subcommand)]
    Genotype(models::GenotypeCommand),
    /// Speed measurements.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Latency lookup table of the ProxylessNAS macro space on this machine: every (layer, MBConv) shape and the
    /// fixed parts timed in eval mode under once-for-all's keys, then checked against whole random networks.
    LatencyTable(latency::LatencyTableArgs),
    /// Baselines at the search's cost.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Run an agnas command as N data-parallel processes on this machine (`agnas launch -n 4 -- search …`), as
    /// torchrun would start them.
    Launch(launch::LaunchArgs),
    /// Compare finished runs (or the seeds of `search --seeds`): every metric's mean ± std, and the consensus
    /// architecture of searches, voted per decision with each run's confidence.
    Report(ReportArgs),
}

#[derive(Subcommand)]
enum BaselineCommand {
    /// Random search given a wall-clock budget: architectures drawn uniformly from what the search could derive,
    /// each trained briefly on the search's training images and validated on its held-out images; the best on
    /// validation wins, and is looked up like a search's result.
    Random(Box<RandomArgs>),
}

#[derive(Args)]
struct RandomArgs {
    /// Space, images and search preset, shared with the search (candidates train with the space's retrain recipe of
    /// that preset, for at most 12 epochs unless --epochs says otherwise).
    #[command(flatten)]
    origin: Origin,
    /// The budget is the wall-clock time this finished search took (its result.json's train_seconds), on the same
    /// images: equal cost, when the search ran on this machine.
    #[arg(long, group = "config_flags", value_name = "RUN", conflicts_with = "budget-minutes")]
    budget_of: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    settings: Settings<flags::Random>,
}

/// Where a search (or its baseline) starts: the space, the images and the preset.
#[derive(Args)]
struct Origin {
    /// Search space: nb201, darts or proxyless (default: the config file's, else nb201).
    #[arg(long, group = "config_flags", value_parser = parse_space)]
    space: Option<SpaceName>,
    /// Training images: CIFAR-10/100 binary folder, class folders (or a .tar.gz of them), or IDX files.
    /// Without it, the CIFAR-10 subset embedded in agnas is used with the `embedded` preset.
    #[arg(long, group = "config_flags")]
    data: Option<PathBuf>,
    /// Starting configuration: paper, embedded or smoke (default: paper with --data, embedded without). The flags
    /// below show the paper and embedded values; `--print-config` prints every value of any preset.
    #[arg(long, group = "config_flags", value_parser = parse_named::<Preset>)]
    preset: Option<Preset>,
}

impl Origin {
    /// Preset ← `--config` ← the settings flags, on the images of `--data`.
    fn recipe<'a>(&'a self, run: &'a RunArgs, given: &'a Overrides) -> Recipe<'a> {
        Recipe {
            preset: self.preset.unwrap_or(Preset::for_data(self.data.as_deref())),
            file: run.config.as_deref(),
            given,
            data: self.data.as_deref(),
            genotype: None,
        }
    }
}

#[derive(Args)]
struct ReportArgs {
    /// Run folders, or folders of `seed-*` runs.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Write the report here too: `.html` for one self-contained page (curves, pictures, configuration of every
    /// run), `.md` for Markdown, `.json` for JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
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
    #[command(flatten)]
    origin: Origin,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    dist: DistArgs,
    #[command(flatten)]
    settings: Settings<flags::Search>,
    /// Search once per seed, one after the other, into `seed-<n>` folders of one run folder, then report on them
    /// (report.md, report.json); run again, it skips finished seeds and resumes a stopped one.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["seed", "resume"])]
    seeds: Option<Vec<u64>>,
}

/// One rule for every command that writes files a user names: an existing file is replaced only with `--force`.
pub(crate) fn refuse_overwrite(files: &[PathBuf], force: bool) -> Result<()> {
    for f in files {
        anyhow::ensure!(force || !f.exists(), "{} exists: give --force to replace it", f.display());
    }
    Ok(())
}

/// Creates the folder a named output file goes into, as `search --out` creates its folder.
pub(crate) fn create_parent(file: &std::path::Path) -> Result<()> {
    match file.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display())),
        None => Ok(()),
    }
}

/// A setting's value by its name, listing the names when it is none of them.
pub(crate) fn parse_named<T: std::str::FromStr + strum::VariantNames>(s: &str) -> Result<T> {
    s.parse().map_err(|_| anyhow::anyhow!("unknown value `{s}` (one of: {})", T::VARIANTS.join(", ")))
}

pub(crate) fn parse_space(s: &str) -> Result<SpaceName> {
    Ok(SpaceName::parse(s)?)
}

/// The space of a command that starts or continues a run: the run folder's with `--resume`, else `--space` and
/// the configuration file's (they must agree).
fn run_space(flag: Option<SpaceName>, run: &RunArgs) -> Result<&'static dyn AnySpace> {
    let name = match &run.resume {
        Some(dir) => resolve(Source::Run(dir), None)?,
        None => resolve(Source::Config(run.config.as_deref()), flag)?,
    };
    Ok(registry::space(name))
}

fn search(args: &SearchArgs) -> Result<()> {
    let space = run_space(args.origin.space, &args.run)?;
    let recipe = args.origin.recipe(&args.run, &args.settings.given);
    if args.run.printed_config(|| space.configuration(Configuration::Search, &recipe))? {
        return Ok(());
    }
    let dist = args.dist.connect(&args.settings.given)?;
    let launch = args.run.launch(dist.clone(), &args.settings.given);
    if let Some(seeds) = &args.seeds {
        let root = dist.is_root();
        let mut tell = |seed, how: Seed| match how {
            _ if !root => {}
            Seed::FinishedBefore(out) => eprintln!("seed {seed}: finished before, in {}", out.display()),
            Seed::Starting => eprintln!("seed {seed}"),
            Seed::Found(done) => found(done),
        };
        let done = space.search_seeds(&recipe, seeds, launch, &mut tell)?;
        if let Some(comparison) = done.result {
            out!("{}", comparison.markdown());
            eprintln!("report: {}", done.out.join("report.md").display());
        }
        return Ok(());
    }
    let done = space.search(&recipe, launch)?;
    if dist.is_root() {
        found(&done);
        print_result(&done.result, &done.out)?;
    }
    Ok(())
}

/// What a search found, on the terminal.
fn found(done: &Finished<SearchResult>) {
    eprintln!("found {}", done.result.arch);
    for line in &done.result.report {
        eprintln!("{line}");
    }
    eprintln!("run folder: {}", done.out.display());
}

fn random(args: &RandomArgs) -> Result<()> {
    let space = run_space(args.origin.space, &args.run)?;
    let recipe = args.origin.recipe(&args.run, &args.settings.given);
    if args.run.printed_config(|| space.configuration(Configuration::Random, &recipe))? {
        return Ok(());
    }
    let launch = args.run.launch(agnas::dist::Dist::single(), &args.settings.given);
    let done = space.random(&recipe, args.budget_of.as_deref(), launch)?;
    let result = &done.result;
    eprintln!("best of {} candidates: {}", result.candidates, result.arch);
    if let Some((b, acc)) = space.benchmark().and_then(|b| Some((b, b.first(result.benchmark.get(b.key)?)?))) {
        eprintln!("{}: {acc:.2} %", b.described);
    }
    eprintln!("run folder: {}", done.out.display());
    print_result(result, &done.out)
}

/// `agnas report`: the runs compared, on stdout and in `--out`.
fn report(args: &ReportArgs) -> Result<()> {
    let dirs = runs::expand(&args.runs)?;
    let spaces: Vec<SpaceName> = dirs.iter().map(|d| resolve(Source::Run(d), None)).collect::<agnas::Result<_>>()?;
    anyhow::ensure!(
        spaces.iter().all(|s| *s == spaces[0]),
        "the runs are of different spaces ({}): report on one space at a time",
        spaces.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    );
    if let Some(path) = &args.out {
        refuse_overwrite(std::slice::from_ref(path), args.force)?;
    }
    let comparison = registry::space(spaces[0]).compare(&dirs)?;
    let markdown = comparison.markdown();
    if let Some(path) = &args.out {
        create_parent(path)?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => agnas::report::write_json(path, &comparison)?,
            Some("md") => agnas::report::atomic_write(path, markdown.as_bytes())?,
            Some("html") => agnas::report::atomic_write(path, runs::html::page(&comparison)?.as_bytes())?,
            _ => anyhow::bail!("--out {}: give a .html, .md or .json file", path.display()),
        }
    }
    out!("{markdown}");
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    let done = match cli.command {
        Command::Search(args) => search(&args),
        Command::Bench201(Bench201Command::Query { arch }) => {
            let record = nb201_bench::query(&arch)?;
            outln!("{}", serde_json::to_string_pretty(record)?);
            Ok(())
        }
        Command::Train(args) => models::train(&args),
        Command::Eval(args) => models::eval(&args),
        Command::Params(args) => models::params(&args),
        Command::Export(args) => export::run(&args),
        Command::Genotype(cmd) => models::genotype(&cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::LatencyTable(args) => latency::run(&args),
        Command::Report(args) => report(&args),
        // The launcher's status is its ranks'.
        Command::Launch(args) => return launch::run(&args),
        Command::Baseline(BaselineCommand::Random(args)) => random(&args),
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// Colour escapes only on a terminal, and never with `NO_COLOR` set (no-color.org): logs redirected to a file, as
/// cluster jobs do, stay plain text.
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Of the ranks of a data-parallel run, rank 0 tells the story; the others speak up only to warn.
    let level = match agnas::dist::launched_rank() {
        _ if cli.quiet => "warn",
        Some(rank) if rank > 0 => "warn",
        _ if cli.verbose => "debug",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .init();
    agnas::train::allocator::keep_freed_memory();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            match agnas::dist::launched_rank() {
                Some(rank) if rank > 0 => eprintln!("error (rank {rank}): {err:#}"),
                _ => eprintln!("error: {err:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests;
