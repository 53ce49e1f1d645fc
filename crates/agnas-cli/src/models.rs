//! `agnas train`, `eval`, `params` and `genotype`: what happens to a genotype after the search.
use crate::run_args::{set_flags, RunArgs, RunSettings};
use agnas::config::Preset;
use agnas::data::DataFormat;
use agnas::data::{
    self,
    augment::Augment,
    loader::{Loader, LoaderConfig},
    Normalization, Split,
};
use agnas::nn::weights;
use agnas::report::{self, progress::ProgressMode};
use agnas::retrain::{self, ModelCard, RetrainConfig, RetrainRun};
use agnas::space::darts::{plot, python, Genotype, NetworkConfig};
use agnas::space::SpaceName;
use agnas::train::{DeviceChoice, MemoryFormat, Start};
use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use tch::nn::VarStore;

fn darts_only(space: SpaceName) -> Result<()> {
    ensure!(
        space == SpaceName::Darts,
        "only the darts space has an evaluation network so far (got {})",
        space.as_str()
    );
    Ok(())
}

#[derive(Args)]
pub struct TrainArgs {
    /// Search space of the genotype.
    #[arg(long, group = "config_flags", default_value = "darts")]
    space: SpaceName,
    /// Built-in name (agnas, darts_v1, darts_v2), random:<seed>, a genotype.json (a search's or a bare one), or Python text.
    #[arg(long, group = "config_flags")]
    genotype: Option<String>,
    /// Training images (default: the embedded CIFAR-10 subset with the `embedded` preset).
    #[arg(long, group = "config_flags")]
    data: Option<PathBuf>,
    /// Test images, evaluated once after the last epoch (CIFAR binary folders give their test batch).
    #[arg(long, group = "config_flags")]
    test_data: Option<PathBuf>,
    /// paper (600 epochs, C=36, 20 cells), embedded or smoke (default: paper with --data, embedded without).
    #[arg(long, group = "config_flags")]
    preset: Option<Preset>,
    #[command(flatten)]
    run: RunArgs,
    /// Initial channels C of the network.
    #[arg(long, group = "config_flags")]
    channels: Option<i64>,
    /// Cells of the network.
    #[arg(long, group = "config_flags")]
    layers: Option<usize>,
    /// Train without the auxiliary head.
    #[arg(long, group = "config_flags")]
    no_auxiliary: bool,
    #[arg(long, group = "config_flags")]
    auxiliary_weight: Option<f64>,
    /// Drop-path probability at the last epoch.
    #[arg(long, group = "config_flags")]
    drop_path: Option<f64>,
    /// Share of the training images that trains; the rest is the validation split (1 = none).
    #[arg(long, group = "config_flags")]
    split: Option<f64>,
}

impl TrainArgs {
    fn config(&self) -> Result<RetrainConfig> {
        let preset = self.preset.unwrap_or(if self.data.is_some() { Preset::Paper } else { Preset::Embedded });
        let mut c = match &self.run.config {
            Some(path) => {
                let mut value = toml::Value::try_from(RetrainConfig::preset(preset))?;
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
                let top: toml::Value =
                    toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
                agnas::config::merge(&mut value, top);
                value.try_into().with_context(|| format!("config {}", path.display()))?
            }
            None => RetrainConfig::preset(preset),
        };
        c.apply(&self.run);
        set_flags!(self, c; genotype => genotype, channels => network.channels, layers => network.layers,
             auxiliary_weight => auxiliary_weight, drop_path => drop_path, split => data.split);
        if self.data.is_some() {
            c.data.path = self.data.clone();
        }
        if self.test_data.is_some() {
            c.test_data = self.test_data.clone();
        }
        c.network.auxiliary &= !self.no_auxiliary;
        Ok(c)
    }
}

pub fn train(args: &TrainArgs) -> Result<()> {
    darts_only(args.space)?;
    let start = match &args.run.resume {
        Some(dir) => Start::Resume(dir.clone()),
        None => {
            let config = args.config()?;
            let name = PathBuf::from(&config.genotype)
                .file_stem()
                .map_or("genotype".into(), |s| s.to_string_lossy().to_string());
            let out = args.run.out_or_default(&format!("train-{name}-seed{}", config.seed));
            Start::New { config, out }
        }
    };
    let out = start.out().to_path_buf();
    let result =
        retrain::run(RetrainRun { start, progress: ProgressMode::Auto, stop_after_steps: args.run.stop_after_steps })?;
    outln!("{}", serde_json::to_string_pretty(&result)?);
    eprintln!("run folder: {}", out.display());
    Ok(())
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
    #[arg(long, value_parser = crate::parse_format, default_value = "auto")]
    format: DataFormat,
    /// Which split of CIFAR/IDX data (a folder is used as it is).
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// For a bare weights file: the genotype and network shape it was trained with.
    #[arg(long)]
    genotype: Option<String>,
    #[arg(long, default_value_t = 36)]
    channels: i64,
    #[arg(long, default_value_t = 20)]
    layers: usize,
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Memory layout: auto (channels-last on the CPU), channels_last or contiguous.
    #[arg(long, default_value = "auto")]
    memory_format: MemoryFormat,
}

pub fn eval(a: &EvalArgs) -> Result<()> {
    if a.threads > 0 {
        tch::set_num_threads(a.threads as i32);
    }
    let device = a.device.resolve()?;
    let split = match a.split {
        SplitArg::Train => Split::Train,
        SplitArg::Test => Split::Test,
    };
    let set = data::open_split(Some(&a.data), a.format, split)?;
    let (card, vs, net) = if a.checkpoint.is_dir() {
        retrain::load_run(&a.checkpoint, device)?
    } else {
        let Some(spec) = &a.genotype else {
            bail!(
                "{} is a weights file: give --genotype (and --channels/--layers if not 36/20)",
                a.checkpoint.display()
            )
        };
        let first = set.image(0).context("reading the first image")?;
        // Released checkpoints keep the auxiliary head's weights; the network then gets the head too (unused in eval).
        let names = tch::Tensor::read_safetensors(&a.checkpoint)
            .with_context(|| format!("reading weights {}", a.checkpoint.display()))?;
        let auxiliary = names.iter().any(|(n, _)| n.contains("auxiliary_head."));
        let card = ModelCard {
            space: "darts".into(),
            genotype: retrain::resolve_genotype(spec)?,
            network: NetworkConfig { channels: a.channels, layers: a.layers, auxiliary, ..NetworkConfig::default() },
            in_channels: first.channels as i64,
            num_classes: set.num_classes() as i64,
            normalization: Normalization::for_dataset(set.as_ref()),
        };
        card.network.validate()?;
        let vs = VarStore::new(device);
        let net = card.build(&vs.root());
        weights::load(&vs, &a.checkpoint)?;
        (card, vs, net)
    };
    a.memory_format.apply(&vs);
    ensure!(
        set.num_classes() as i64 == card.num_classes,
        "{} has {} classes but the network was trained for {}",
        a.data.display(),
        set.num_classes(),
        card.num_classes
    );
    let config = LoaderConfig {
        batch_size: a.batch_size,
        shuffle: false,
        drop_last: false,
        augment: Augment::none(),
        normalization: card.normalization.clone(),
        workers: 2,
        prefetch: 4,
        seed: 0,
    };
    let loader = Loader::new(set.clone(), (0..set.len()).collect(), config);
    let m = retrain::evaluate(&net, &loader, device, ProgressMode::Auto, "eval")?;
    outln!("{}", serde_json::to_string_pretty(&m)?);
    Ok(())
}

#[derive(Args)]
pub struct ParamsArgs {
    #[arg(long, default_value = "darts")]
    space: SpaceName,
    #[arg(long, default_value = "agnas")]
    genotype: String,
    #[arg(long, default_value_t = 36)]
    channels: i64,
    #[arg(long, default_value_t = 20)]
    layers: usize,
    #[arg(long, default_value_t = 10)]
    num_classes: i64,
    /// Input side in pixels (for the MACs).
    #[arg(long, default_value_t = 32)]
    image_size: i64,
}

/// Parameters (without the auxiliary head, as the field counts them) and multiply-accumulates of one image.
pub fn params(a: &ParamsArgs) -> Result<()> {
    darts_only(a.space)?;
    let network = NetworkConfig { channels: a.channels, layers: a.layers, ..NetworkConfig::default() };
    network.validate()?;
    let card = ModelCard {
        space: "darts".into(),
        genotype: retrain::resolve_genotype(&a.genotype)?,
        network,
        in_channels: 3,
        num_classes: a.num_classes,
        normalization: Normalization::cifar10(),
    };
    let (params, macs) = retrain::count(&card, (a.image_size, a.image_size));
    let line = serde_json::json!({
        "genotype": a.genotype,
        "channels": a.channels,
        "layers": a.layers,
        "num_classes": a.num_classes,
        "params": params,
        "params_m": (params as f64 / 1e4).round() / 100.0,
        "macs": macs,
        "macs_m": (macs as f64 / 1e4).round() / 100.0,
    });
    outln!("{line}");
    Ok(())
}

#[derive(Subcommand)]
pub enum GenotypeCommand {
    /// Print a genotype as JSON or as DARTS Python text.
    Show {
        genotype: String,
        #[arg(long, value_enum, default_value = "python")]
        to: TextFormat,
    },
    /// Draw each cell of a genotype as an SVG diagram into a folder.
    Plot {
        genotype: String,
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Also draw the last epoch's held-out importances of a search's importances.json as `importance.svg`.
        #[arg(long)]
        importances: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TextFormat {
    Json,
    Python,
}

pub fn genotype(cmd: &GenotypeCommand) -> Result<()> {
    match cmd {
        GenotypeCommand::Show { genotype, to } => {
            let g = retrain::resolve_genotype(genotype)?;
            match to {
                TextFormat::Json => outln!("{}", serde_json::to_string_pretty(&g)?),
                TextFormat::Python => out!("{}", python::to_python(&g)),
            }
        }
        GenotypeCommand::Plot { genotype, out, importances } => {
            let g = retrain::resolve_genotype(genotype)?;
            let label =
                std::path::Path::new(genotype).file_name().map_or(genotype.clone(), |n| n.to_string_lossy().into());
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            let cells: Vec<(String, &agnas::space::darts::CellGenotype, agnas::space::darts::CellKind)> = match &g {
                Genotype::NormalReduce { normal, reduce } => vec![
                    ("normal".into(), normal, agnas::space::darts::CellKind::Normal),
                    ("reduce".into(), reduce, agnas::space::darts::CellKind::Reduce),
                ],
                Genotype::Stages { cells } => cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let kind = if i % 2 == 1 {
                            agnas::space::darts::CellKind::Reduce
                        } else {
                            agnas::space::darts::CellKind::Normal
                        };
                        (format!("stage{i}"), c, kind)
                    })
                    .collect(),
            };
            for (name, cell, kind) in cells {
                let path = out.join(format!("{name}.svg"));
                report::atomic_write(&path, plot::cell_svg(cell, kind, &format!("{label}: {name}")).as_bytes())?;
                eprintln!("wrote {}", path.display());
            }
            if let Some(file) = importances {
                let path = out.join("importance.svg");
                report::atomic_write(&path, importance_heatmap(file)?.as_bytes())?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

/// The heatmap of the last epoch of a DARTS search's `importances.json` (held-out sums, else the training pass's).
fn importance_heatmap(file: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let epochs: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let last = epochs.as_array().and_then(|e| e.last()).with_context(|| format!("{}: no epochs", file.display()))?;
    let pass = if last["heldout"].is_null() { &last["train"] } else { &last["heldout"] };
    /// Values (cells × edges × ops), panel titles, op names.
    type Heat = (Vec<Vec<Vec<f64>>>, Vec<String>, Vec<String>);
    let parse = || -> Result<Heat> {
        let values = serde_json::from_value(pass["values"].clone())?;
        let cells: Vec<serde_json::Value> = serde_json::from_value(pass["cells"].clone())?;
        let titles = cells
            .iter()
            .map(|c| {
                format!(
                    "{} ({}, C={})",
                    c["name"].as_str().unwrap_or("?"),
                    c["kind"].as_str().unwrap_or("?"),
                    c["channels"]
                )
            })
            .collect();
        let ops = serde_json::from_value(pass["ops"].clone())?;
        Ok((values, titles, ops))
    };
    let (values, titles, ops) =
        parse().with_context(|| format!("{} is not the importances.json of a DARTS search", file.display()))?;
    // A cell of s steps has s(s+3)/2 edges.
    let steps = values
        .first()
        .map_or(0, |c: &Vec<Vec<f64>>| (((8 * c.len() + 9) as f64).sqrt() as usize).saturating_sub(3) / 2);
    let ops: Vec<&str> = ops.iter().map(|s: &String| s.as_str()).collect();
    let title = format!("AGNAS importances, epoch {}", last["epoch"]);
    Ok(plot::importance_heatmap_svg(&values, &titles, &agnas::space::darts::node_edge_labels(steps), &ops, &title))
}
