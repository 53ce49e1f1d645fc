//! `agnas train`, `eval`, `params` and `genotype`: what happens to a genotype after the search, in any space.
use crate::flags::{NetworkShape, Rederive, Retrain, Settings};
use crate::run_args::{DistArgs, RunArgs};
use crate::{parse_named, parse_space};
use agnas::config::{Preset, Recipe};
use agnas::data::{
    self,
    augment::{CenterView, Transform},
    loader::{Loader, LoaderConfig, Shard},
    DataFormat, Split,
};
use agnas::dist::Dist;
use agnas::registry::resolve::{resolve, Source};
use agnas::registry::{self, AnySpace, Configuration};
use agnas::report::{self, progress::ProgressMode};
use agnas::retrain::{self, Images, NetworkOf, NetworkSource, Weights};
use agnas::space::SpaceName;
use agnas::train::{DeviceChoice, MemoryFormat, Precision};
use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct TrainArgs {
    /// Search space of the genotype: darts, nb201 or proxyless (default: the config file's, else the one the
    /// genotype belongs to; without --genotype, darts, whose released AGNAS cells then train).
    #[arg(long, group = "config_flags", value_parser = parse_space)]
    space: Option<SpaceName>,
    /// DARTS: a built-in name (agnas, darts_v1, darts_v2), random:<seed>, a genotype.json or Python text.
    /// NAS-Bench-201: an arch string, a benchmark index, or a genotype.json.
    /// ProxylessNAS: 21 layer ids (`1 1 -1 2 …`, −1 = skip), `released` (the paper's), or a genotype.json.
    #[arg(long, visible_alias = "arch", group = "config_flags", allow_hyphen_values = true)]
    genotype: Option<String>,
    /// Training images (default: the embedded CIFAR-10 subset with the `embedded` preset).
    #[arg(long, group = "config_flags")]
    data: Option<PathBuf>,
    /// paper (the space's recipe: DARTS 600 epochs C=36 20 cells; NB201 the benchmark's 200 epochs), embedded or
    /// smoke (default: paper with --data, embedded without). The flags below show the paper and embedded values;
    /// `--print-config` prints every value of any preset.
    #[arg(long, group = "config_flags", value_parser = parse_named::<Preset>)]
    preset: Option<Preset>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    dist: DistArgs,
    #[command(flatten)]
    settings: Settings<Retrain>,
}

impl TrainArgs {
    /// Preset ← `--config` ← the settings flags, with the genotype and images of the flags.
    pub(crate) fn recipe(&self) -> Recipe<'_> {
        Recipe {
            preset: self.preset.unwrap_or(Preset::for_data(self.data.as_deref())),
            file: self.run.config.as_deref(),
            given: &self.settings.given,
            data: self.data.as_deref(),
            genotype: self.genotype.as_deref(),
        }
    }
}

/// The genotype a command takes when none is given: the released AGNAS cells (DARTS space).
const DEFAULT_GENOTYPE: &str = "agnas";

/// The space of a command on a genotype: `--space`, the configuration file's and the genotype's, which must agree;
/// without a genotype, the flag's or the file's (else that of the released AGNAS cells).
fn genotype_space(flag: Option<SpaceName>, config: Option<&Path>, genotype: Option<&str>) -> Result<SpaceName> {
    let named = match config {
        Some(_) => Some(resolve(Source::Config(config), flag)?),
        None => flag,
    };
    match (genotype, named) {
        (Some(genotype), named) => Ok(resolve(Source::Genotype(genotype), named)?),
        (None, Some(named)) => Ok(named),
        (None, None) => Ok(resolve(Source::Genotype(DEFAULT_GENOTYPE), None)?),
    }
}

pub fn train(args: &TrainArgs) -> Result<()> {
    let space = match &args.run.resume {
        Some(dir) => resolve(Source::Run(dir), None)?,
        None => genotype_space(args.space, args.run.config.as_deref(), args.genotype.as_deref())?,
    };
    let space = registry::space(space);
    if args.run.printed_config(|| space.configuration(Configuration::Retrain, &args.recipe()))? {
        return Ok(());
    }
    let dist = args.dist.connect(&args.settings.given)?;
    let done = space.retrain(&args.recipe(), args.run.launch(dist.clone(), &args.settings.given))?;
    if dist.is_root() {
        eprintln!("run folder: {}", done.out.display());
        crate::print_result(&done.result, &done.out)?;
    }
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Train,
    /// `test/`, else `val/`, of a folder; CIFAR's test batch.
    #[value(alias = "val")]
    Test,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A finished `agnas train` run folder, or a weights .safetensors file (PyTorch names; then give --genotype).
    #[arg(long, alias = "checkpoint")]
    run: PathBuf,
    /// Images to evaluate on.
    #[arg(long)]
    data: PathBuf,
    /// Format of --data (auto: guessed).
    #[arg(long, value_parser = parse_named::<DataFormat>, default_value = "auto")]
    format: DataFormat,
    /// Which split of CIFAR/IDX data (a folder is used as it is).
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// The space of a bare weights file (default: the one --genotype belongs to; a run folder's model.json names
    /// its own).
    #[arg(long, value_parser = parse_space)]
    space: Option<SpaceName>,
    /// The genotype a bare weights file was trained with: a built-in name, an arch string or id list, a
    /// genotype.json or Python text.
    #[arg(long, visible_alias = "arch", allow_hyphen_values = true)]
    genotype: Option<String>,
    /// The network shape of a bare weights file, when not the paper's.
    #[command(flatten)]
    pub(crate) network: Settings<NetworkShape>,
    /// Images per evaluation batch.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Resize the shorter side to this before cropping (default: what the network was validated with, e.g. 256
    /// for ImageNet; 0 = not).
    #[arg(long)]
    resize: Option<usize>,
    /// Centre crop to this square (default: what the network was validated with, e.g. 224; 0 = not).
    #[arg(long)]
    crop: Option<usize>,
    /// auto, cpu or cuda.
    #[arg(long, value_parser = parse_named::<DeviceChoice>, default_value = "auto")]
    device: DeviceChoice,
    /// CPU threads for libtorch (0 = its default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Memory layout: auto (channels-last on the CPU), channels_last or contiguous.
    #[arg(long, value_parser = parse_named::<MemoryFormat>, default_value = "auto")]
    memory_format: MemoryFormat,
    /// Activations' type: fp32, or bf16 (the weights stay fp32).
    #[arg(long, value_parser = parse_named::<Precision>, default_value = "fp32")]
    precision: Precision,
}

pub fn eval(a: &EvalArgs) -> Result<()> {
    ensure!(a.run.exists(), agnas::Error::Missing { path: a.run.clone() });
    let space = if a.run.is_dir() {
        ensure!(
            a.space.is_none() && a.genotype.is_none() && a.network.given.is_empty(),
            "--space, --genotype and the network shape are for a bare weights file; a run folder's model.json \
             decides them"
        );
        resolve(Source::Model(&a.run), None)?
    } else {
        genotype_space(a.space, None, a.genotype.as_deref())?
    };
    if a.threads > 0 {
        tch::set_num_threads(a.threads as i32);
    }
    let device = a.device.resolve()?;
    a.precision.check(device)?;
    let split = match a.split {
        SplitArg::Train => Split::Train,
        SplitArg::Test => Split::Test,
    };
    let set = data::open_split(Some(&a.data), a.format, split)?;
    let source = match &a.genotype {
        _ if a.run.is_dir() => NetworkSource::Run(&a.run),
        // The space's paper network with the shape of the flags, evaluated as its paper recipe does.
        Some(genotype) => NetworkSource::Paper {
            genotype,
            shape: &a.network.given,
            weights: Weights::File(&a.run),
            images: Images::Of(set.as_ref()),
        },
        None => {
            bail!("{} is a weights file: give --genotype (and the network shape if not the paper's)", a.run.display())
        }
    };
    let network = registry::space(space).network(source, device)?;
    a.memory_format.apply(&network.vs);
    ensure!(
        set.num_classes() as i64 == network.num_classes,
        "{} has {} classes but the network was trained for {}",
        a.data.display(),
        set.num_classes(),
        network.num_classes
    );
    let config = LoaderConfig {
        batch_size: a.batch_size,
        shuffle: false,
        drop_last: false,
        transform: Transform {
            view: CenterView { resize: a.resize.unwrap_or(network.resize), crop: a.crop.unwrap_or(network.crop) },
            ..Transform::default()
        },
        normalization: network.normalization.clone(),
        workers: 2,
        prefetch: 4,
        seed: 0,
        shard: Shard::default(),
    };
    let loader = Loader::new(set.clone(), (0..set.len()).collect(), config);
    let m = retrain::evaluate(
        network.net.as_ref(),
        &loader,
        (device, a.precision.kind()),
        &Dist::single(),
        ProgressMode::Auto,
        "eval",
    )?;
    outln!("{}", serde_json::to_string_pretty(&m)?);
    Ok(())
}

/// A genotype's network without a run folder: the space's paper network in the shape of the flags.
#[derive(Args)]
pub struct GenotypeNetworkArgs {
    /// The genotype's space (default: the one the genotype belongs to).
    #[arg(long, value_parser = parse_space)]
    pub space: Option<SpaceName>,
    /// The genotype, as `agnas train --genotype` takes it (each command words its default).
    #[arg(long, visible_alias = "arch", allow_hyphen_values = true)]
    pub genotype: Option<String>,
    #[command(flatten)]
    pub network: Settings<NetworkShape>,
    /// Classes (default: the space's benchmark: 10 for the CIFAR spaces, 1000 for ImageNet).
    #[arg(long)]
    pub num_classes: Option<i64>,
    /// Input side in pixels (each command words its default).
    #[arg(long)]
    pub image_size: Option<i64>,
}

impl GenotypeNetworkArgs {
    /// The space the flags (or else the genotype) name.
    pub fn space(&self) -> Result<&'static dyn AnySpace> {
        Ok(registry::space(genotype_space(self.space, None, self.genotype.as_deref())?))
    }

    /// Whether any flag of a genotype's network was given.
    pub fn any(&self) -> bool {
        self.space.is_some() || self.genotype.is_some() || !self.network.given.is_empty()
    }
}

#[derive(Args)]
pub struct ParamsArgs {
    #[command(flatten)]
    pub(crate) of: GenotypeNetworkArgs,
}

/// Parameters (without the auxiliary head, as the field counts them) and multiply-accumulates of one image.
pub fn params(a: &ParamsArgs) -> Result<()> {
    let of = NetworkOf {
        genotype: a.of.genotype.as_deref(),
        shape: &a.of.network.given,
        num_classes: a.of.num_classes,
        image_size: a.of.image_size,
    };
    outln!("{}", serde_json::to_string(&a.of.space()?.size(&of)?)?);
    Ok(())
}

#[derive(Subcommand)]
pub enum GenotypeCommand {
    /// Print a genotype as JSON or as the field's text (DARTS Python, NB201 arch string).
    Show {
        /// The genotype: a built-in name, an arch string or id list, a genotype.json or Python text.
        #[arg(allow_hyphen_values = true)]
        genotype: String,
        /// How to write it.
        #[arg(long, value_enum, default_value = "text")]
        to: TextFormat,
        /// The genotype's space (default: the one the genotype belongs to).
        #[arg(long, value_parser = parse_space)]
        space: Option<SpaceName>,
    },
    /// Draw a genotype's cells as SVG diagrams into a folder.
    Plot {
        /// The genotype: a built-in name, an arch string or id list, a genotype.json or Python text.
        #[arg(allow_hyphen_values = true)]
        genotype: String,
        /// Folder for the pictures.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Also draw the last epoch's importances of a search's importances.json as `importance.svg`.
        #[arg(long)]
        importances: Option<PathBuf>,
        /// Replace pictures that exist in --out.
        #[arg(long)]
        force: bool,
        /// The genotype's space (default: the one the genotype belongs to).
        #[arg(long, value_parser = parse_space)]
        space: Option<SpaceName>,
    },
    /// Derive the genotype again from a search's run folder (its importances.json and config.toml) and print it as
    /// genotype.json holds it.
    Derive {
        /// The search's run folder.
        run: PathBuf,
        /// `[derive]` settings laid over the search's.
        #[command(flatten)]
        derive: Settings<Rederive>,
        /// Also write the files the derivation makes (genotype.json, pictures, the budget front) into this folder.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace files that exist in --out.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TextFormat {
    Json,
    /// DARTS: `Genotype(...)` Python text; NB201: the arch string.
    #[value(alias = "python")]
    Text,
}

pub fn genotype(cmd: &GenotypeCommand) -> Result<()> {
    match cmd {
        GenotypeCommand::Derive { run, derive, out, force } => {
            let derived = registry::space(resolve(Source::Run(run), None)?).rederive(run, &derive.given)?;
            if let Some(dir) = out {
                let names = std::iter::once("genotype.json").chain(derived.files.iter().map(|(n, _)| n.as_str()));
                crate::refuse_overwrite(&names.map(|n| dir.join(n)).collect::<Vec<_>>(), *force)?;
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                report::write_json(&dir.join("genotype.json"), &derived.genotype)?;
                for (name, bytes) in &derived.files {
                    report::atomic_write(&dir.join(name), bytes)?;
                }
            }
            outln!("{}", serde_json::to_string_pretty(&derived.genotype)?);
            for line in &derived.report {
                eprintln!("{line}");
            }
        }
        GenotypeCommand::Show { genotype, to, space } => {
            let g = registry::space(genotype_space(*space, None, Some(genotype))?).genotype(genotype)?;
            match to {
                TextFormat::Json => outln!("{}", serde_json::to_string_pretty(&g.json()?)?),
                TextFormat::Text => out!("{}", g.text()),
            }
        }
        GenotypeCommand::Plot { genotype, out, importances, space, force } => {
            let space = registry::space(genotype_space(*space, None, Some(genotype))?);
            let g = space.genotype(genotype)?;
            let label = Path::new(genotype).file_name().map_or(genotype.clone(), |n| n.to_string_lossy().into());
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            let mut pictures = g.pictures(&label);
            if let Some(file) = importances {
                pictures.push(("importance.svg".into(), importance_picture(space, file)?));
            }
            crate::refuse_overwrite(&pictures.iter().map(|(n, _)| out.join(n)).collect::<Vec<_>>(), *force)?;
            for (name, svg) in pictures {
                let path = out.join(name);
                report::atomic_write(&path, svg.as_bytes())?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

/// The heatmap of the last epoch of a search's `importances.json` (held-out sums, else the training pass's).
fn importance_picture(space: &dyn AnySpace, file: &Path) -> Result<String> {
    let records = agnas::search::read_importance_records(file)?;
    let last = records.last().with_context(|| format!("{}: no epochs", file.display()))?;
    let title = format!("AGNAS importances, epoch {}", last.epoch);
    let notes = last.confidence.as_ref().map(|c| c.notes()).unwrap_or_default();
    space
        .importance_svg(&last.latest_pass().0, &title, &notes)
        .with_context(|| format!("{} is not the importances.json of a {} search", file.display(), space.name()))
}
