//! `agnas train`, `eval`, `params` and `genotype`: what happens to a genotype after the search, in any space.
use crate::flags::{NetworkShape, Rederive, Retrain, Settings};
use crate::run_args::RunArgs;
use crate::{parse_named, parse_space};
use agnas::config::{self, Preset, RetrainConfig};
use agnas::data::{
    self,
    augment::{CenterView, Transform},
    loader::{Loader, LoaderConfig, Shard},
    DataFormat, Split,
};
use agnas::dist::Dist;
use agnas::report::{self, progress::ProgressMode};
use agnas::retrain::{self, RetrainRun};
use agnas::space::resolve::{resolve, Source};
use agnas::space::{Counts, Section, Space, SpaceName, SpaceTask};
use agnas::train::{DeviceChoice, MemoryFormat};
use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

/// The shape of a genotype's evaluation network, from the flags: the space's paper network unless they say
/// otherwise (the network a released or bare weights file was trained as).
pub fn paper_network<S: Space>(shape: &Settings<NetworkShape>) -> Result<RetrainConfig<S>> {
    let paper = config::layered(S::retrain_preset(Preset::Paper), None, &shape.given)?;
    paper.network.validate()?;
    Ok(paper)
}

#[derive(Args)]
pub struct TrainArgs {
    /// Search space of the genotype: darts, nb201 or proxyless (default: the config file's, else the one the
    /// genotype belongs to).
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
    /// smoke (default: paper with --data, embedded without).
    #[arg(long, group = "config_flags", value_parser = parse_named::<Preset>)]
    preset: Option<Preset>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    settings: Settings<Retrain>,
}

impl TrainArgs {
    pub(crate) fn config<S: Space>(&self) -> Result<RetrainConfig<S>> {
        let preset = self.preset.unwrap_or(if self.data.is_some() { Preset::Paper } else { Preset::Embedded });
        let mut c = config::layered(S::retrain_preset(preset), self.run.config.as_deref(), &self.settings.given)?;
        if let Some(genotype) = &self.genotype {
            c.genotype = genotype.clone();
        }
        ensure!(!c.genotype.is_empty(), "give the architecture to train: --genotype (or --arch)");
        if self.data.is_some() {
            c.data.path = self.data.clone();
        }
        Ok(c)
    }
}

impl SpaceTask for &TrainArgs {
    type Output = Result<()>;

    fn run<S: Space>(self) -> Result<()> {
        let start = self.run.start(|| {
            let config = self.config::<S>()?;
            let name = format!("train-{}-{}-seed{}", S::NAME, folder_word(&config.genotype), config.seed);
            Ok((config, name))
        })?;
        let out = start.out().to_path_buf();
        let dist = self.run.connect(&self.settings.given)?;
        let result = retrain::run::<S>(RetrainRun {
            start,
            progress: ProgressMode::Auto,
            stop_after_steps: self.run.stop_after_steps,
            dist: dist.clone(),
        })?;
        if dist.is_root() {
            outln!("{}", serde_json::to_string_pretty(&result)?);
            eprintln!("run folder: {}", out.display());
        }
        Ok(())
    }
}

/// A genotype as a folder name: a file's stem, or the text with everything but letters, digits, `-` and `_` dropped
/// (an NB201 arch string is all bars and tildes).
fn folder_word(genotype: &str) -> String {
    let stem = Path::new(genotype).file_stem().map_or(genotype.into(), |s| s.to_string_lossy());
    let word: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    if word.is_empty() {
        "genotype".into()
    } else {
        word.chars().take(60).collect()
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
        (Some(genotype), named) => resolve(Source::Genotype(genotype), named),
        (None, Some(named)) => Ok(named),
        (None, None) => resolve(Source::Genotype(DEFAULT_GENOTYPE), None),
    }
}

pub fn train(args: &TrainArgs) -> Result<()> {
    let space = match &args.run.resume {
        Some(dir) => resolve(Source::Run(dir), None)?,
        None => genotype_space(args.space, args.run.config.as_deref(), args.genotype.as_deref())?,
    };
    space.dispatch(args)
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Train,
    Test,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A finished `agnas train` run folder, or a weights .safetensors file (PyTorch names; then give --genotype).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Images to evaluate on.
    #[arg(long)]
    data: PathBuf,
    /// Format of --data (auto: guessed).
    #[arg(long, value_parser = parse_named::<DataFormat>, default_value = "auto")]
    format: DataFormat,
    /// Which split of CIFAR/IDX data (a folder is used as it is).
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// For a bare weights file: its space (default darts) …
    #[arg(long, value_parser = parse_space)]
    space: Option<SpaceName>,
    /// … the genotype it was trained with …
    #[arg(long, visible_alias = "arch", allow_hyphen_values = true)]
    genotype: Option<String>,
    /// … and its network shape, when not the paper's.
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
}

impl SpaceTask for &EvalArgs {
    type Output = Result<()>;

    fn run<S: Space>(self) -> Result<()> {
        if self.threads > 0 {
            tch::set_num_threads(self.threads as i32);
        }
        let device = self.device.resolve()?;
        let split = match self.split {
            SplitArg::Train => Split::Train,
            SplitArg::Test => Split::Test,
        };
        let set = data::open_split(Some(&self.data), self.format, split)?;
        let (card, vs, net) = match &self.genotype {
            _ if self.checkpoint.is_dir() => retrain::load_run::<S>(&self.checkpoint, device)?,
            Some(spec) => {
                // The space's paper network with the shape of the flags, evaluated as its paper recipe does.
                let paper = paper_network::<S>(&self.network)?;
                let genotype = S::parse_genotype(spec)?;
                retrain::load_weights::<S>(
                    &self.checkpoint,
                    genotype,
                    paper.network,
                    &paper.data,
                    set.as_ref(),
                    device,
                )?
            }
            None => bail!(
                "{} is a weights file: give --genotype (and the network shape if not the paper's)",
                self.checkpoint.display()
            ),
        };
        self.memory_format.apply(&vs);
        ensure!(
            set.num_classes() as i64 == card.num_classes,
            "{} has {} classes but the network was trained for {}",
            self.data.display(),
            set.num_classes(),
            card.num_classes
        );
        let config = LoaderConfig {
            batch_size: self.batch_size,
            shuffle: false,
            drop_last: false,
            transform: Transform {
                view: CenterView { resize: self.resize.unwrap_or(card.resize), crop: self.crop.unwrap_or(card.crop) },
                ..Transform::default()
            },
            normalization: card.normalization.clone(),
            workers: 2,
            prefetch: 4,
            seed: 0,
            shard: Shard::default(),
        };
        let loader = Loader::new(set.clone(), (0..set.len()).collect(), config);
        let m = retrain::evaluate(net.as_ref(), &loader, device, &Dist::single(), ProgressMode::Auto, "eval")?;
        outln!("{}", serde_json::to_string_pretty(&m)?);
        Ok(())
    }
}

pub fn eval(a: &EvalArgs) -> Result<()> {
    ensure!(a.checkpoint.exists(), agnas::Error::Missing { path: a.checkpoint.clone() });
    let space = if a.checkpoint.is_dir() {
        ensure!(
            a.space.is_none() && a.genotype.is_none() && a.network.given.is_empty(),
            "--space, --genotype and the network shape are for a bare weights file; a run folder's model.json \
             decides them"
        );
        resolve(Source::Model(&a.checkpoint), None)?
    } else {
        genotype_space(a.space, None, a.genotype.as_deref())?
    };
    space.dispatch(a)
}

/// A genotype's network without a run folder: the space's paper network in the shape of the flags.
#[derive(Args)]
pub struct GenotypeNetworkArgs {
    /// The genotype's space (default: the one the genotype belongs to).
    #[arg(long, value_parser = parse_space)]
    pub space: Option<SpaceName>,
    /// The genotype, as `agnas train --genotype` takes it (`params`: default the space's released one, the released
    /// AGNAS cells without --space).
    #[arg(long, visible_alias = "arch", allow_hyphen_values = true)]
    pub genotype: Option<String>,
    #[command(flatten)]
    pub network: Settings<NetworkShape>,
    /// Classes (default: the space's benchmark: 10 for the CIFAR spaces, 1000 for ImageNet).
    #[arg(long)]
    pub num_classes: Option<i64>,
    /// Input side in pixels (default: the space's benchmark: 32 or 224; `export` of a run: its evaluation crop).
    #[arg(long)]
    pub image_size: Option<i64>,
}

impl GenotypeNetworkArgs {
    pub fn num_classes<S: Space>(&self) -> i64 {
        self.num_classes.unwrap_or(S::REFERENCE_INPUT.1)
    }

    /// The space the flags (or else the genotype) name.
    pub fn space(&self) -> Result<SpaceName> {
        genotype_space(self.space, None, self.genotype.as_deref())
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

impl SpaceTask for &ParamsArgs {
    type Output = Result<()>;

    fn run<S: Space>(self) -> Result<()> {
        let preset = paper_network::<S>(&self.of.network)?;
        let spec = self.of.genotype.clone().unwrap_or(preset.genotype);
        ensure!(!spec.is_empty(), "give the architecture: --genotype (or --arch)");
        let genotype = S::parse_genotype(&spec)?;
        let (image_size, num_classes) =
            (self.of.image_size.unwrap_or(S::REFERENCE_INPUT.0), self.of.num_classes::<S>());
        let size = (image_size, image_size);
        let Counts { params, macs } = agnas::space::count::<S>(&preset.network, &genotype, 3, num_classes, size);
        let mut line = serde_json::json!({ "space": S::NAME, "genotype": spec });
        if let (Some(map), serde_json::Value::Object(network)) =
            (line.as_object_mut(), serde_json::to_value(&preset.network)?)
        {
            map.extend(network);
        }
        line["num_classes"] = num_classes.into();
        line["image_size"] = image_size.into();
        line["params"] = params.into();
        line["params_m"] = ((params as f64 / 1e4).round() / 100.0).into();
        line["macs"] = macs.into();
        line["macs_m"] = ((macs as f64 / 1e4).round() / 100.0).into();
        line["rule"] =
            "params outside any auxiliary head; MACs = conv and linear multiply-accumulates per image".into();
        let flops = S::field_flops(&preset.network, &genotype, num_classes, image_size);
        if let (Some(map), Some(serde_json::Value::Object(more))) =
            (line.as_object_mut(), flops.map(serde_json::to_value).transpose()?)
        {
            map.extend(more);
        }
        outln!("{line}");
        Ok(())
    }
}

/// Parameters (without the auxiliary head, as the field counts them) and multiply-accumulates of one image.
pub fn params(a: &ParamsArgs) -> Result<()> {
    a.of.space()?.dispatch(a)
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
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TextFormat {
    Json,
    /// DARTS: `Genotype(...)` Python text; NB201: the arch string.
    #[value(alias = "python")]
    Text,
}

impl SpaceTask for &GenotypeCommand {
    type Output = Result<()>;

    fn run<S: Space>(self) -> Result<()> {
        match self {
            GenotypeCommand::Derive { run, derive, out } => {
                let derived = agnas::search::rederive::<S>(run, &derive.given)?;
                if let Some(dir) = out {
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
            GenotypeCommand::Show { genotype, to, .. } => {
                let g = S::parse_genotype(genotype)?;
                match to {
                    TextFormat::Json => outln!("{}", serde_json::to_string_pretty(&g)?),
                    TextFormat::Text => out!("{}", S::genotype_text(&g)),
                }
            }
            GenotypeCommand::Plot { genotype, out, importances, .. } => {
                let g = S::parse_genotype(genotype)?;
                let label = Path::new(genotype).file_name().map_or(genotype.clone(), |n| n.to_string_lossy().into());
                std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
                let mut pictures = S::pictures(&g, &label);
                if let Some(file) = importances {
                    pictures.push(("importance.svg".into(), importance_picture::<S>(file)?));
                }
                for (name, svg) in pictures {
                    let path = out.join(name);
                    report::atomic_write(&path, svg.as_bytes())?;
                    eprintln!("wrote {}", path.display());
                }
            }
        }
        Ok(())
    }
}

/// The heatmap of the last epoch of a search's `importances.json` (held-out sums, else the training pass's).
fn importance_picture<S: Space>(file: &Path) -> Result<String> {
    let records = agnas::search::read_importance_records(file)?;
    let last = records.last().with_context(|| format!("{}: no epochs", file.display()))?;
    let title = format!("AGNAS importances, epoch {}", last.epoch);
    let notes = last.confidence.as_ref().map(|c| c.notes()).unwrap_or_default();
    S::importance_svg(&last.latest_pass().0, &title, &notes)
        .with_context(|| format!("{} is not the importances.json of a {} search", file.display(), S::NAME))
}

pub fn genotype(cmd: &GenotypeCommand) -> Result<()> {
    let space = match cmd {
        GenotypeCommand::Show { genotype, space, .. } | GenotypeCommand::Plot { genotype, space, .. } => {
            genotype_space(*space, None, Some(genotype))?
        }
        GenotypeCommand::Derive { run, .. } => resolve(Source::Run(run), None)?,
    };
    space.dispatch(cmd)
}
