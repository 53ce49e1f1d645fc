//! Run configurations: a space's preset ← TOML file ← command-line flags, written back into the run folder as
//! `config.toml`. The sections a space owns (`[supernet]`, `[derive]`, `[network]`) have its own types.
use crate::data::{DataConfig, DataFormat};
use crate::error::{ensure, Result};
use crate::train::{DeviceChoice, MemoryFormat, Precision, RunConfig, TrainConfig};
use crate::Error;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use settings::{named_kind, Kind};
pub use settings::{Overrides, Setting};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

pub mod settings;

/// A section of a run's configuration that a space owns (`[supernet]`, `[derive]`, `[network]`).
pub trait Section: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Default {
    /// Rejects impossible values, naming the field.
    fn validate(&self) -> Result<()>;
}

/// What a configuration needs of a search space: its name and the types of its sections.
pub trait SpaceSections: Debug + Clone + Copy + PartialEq + Default + 'static {
    /// The name in `space = "…"` and on the command line.
    const NAME: &'static str;
    /// The settings of its sections that a user may give on the command line: the one table its flags, their help
    /// and their keys come from.
    const SETTINGS: &'static [Setting];
    /// `[supernet]`: the shape of the supernet.
    type Supernet: Section;
    /// `[derive]`: how the genotype is read off the importances.
    type Derive: Section;
    /// `[network]`: the shape and regularisers of the evaluation network.
    type Network: Section;
}

/// The held-out pass that accumulates the importances the architecture is derived from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportanceConfig {
    /// Augment the held-out images as in training (the official code does; the paper forwards them as they are).
    pub augment: bool,
    /// A held-out pass every this many epochs besides the one after the last (0 = after the last only): the
    /// rankings over time, and what `until_decided` watches.
    pub every: usize,
    /// Held-out images of the passes before the last, the first of the held-out split (0 = all of them).
    pub subset: usize,
    pub batch_size: usize,
    /// Bootstrap resamples of the held-out batches that measure each decision's confidence (0 = none).
    pub resamples: usize,
    /// Decisions less sure than this are listed with a warning.
    pub min_confidence: f64,
    /// Warn when more than this share of the chosen operations has no parameters (skip, pooling).
    pub max_parameter_free: f64,
    /// Stop the search once every decision has stayed the same, at least this sure, in two consecutive held-out
    /// passes (0 = run every epoch); needs `every`.
    pub until_decided: f64,
    /// Epochs trained before `until_decided` may stop the search.
    pub min_epochs: usize,
}

impl Default for ImportanceConfig {
    fn default() -> Self {
        ImportanceConfig {
            augment: false,
            every: 0,
            subset: 0,
            batch_size: 128,
            resamples: 500,
            min_confidence: 0.9,
            max_parameter_free: 0.5,
            until_decided: 0.0,
            min_epochs: 1,
        }
    }
}

impl ImportanceConfig {
    fn validate(&self) -> Result<()> {
        ensure!(self.batch_size > 0, "importance.batch_size must be at least 1");
        for (name, v) in [
            ("min_confidence", self.min_confidence),
            ("max_parameter_free", self.max_parameter_free),
            ("until_decided", self.until_decided),
        ] {
            ensure!((0.0..=1.0).contains(&v), "importance.{name} must be between 0 and 1 (got {v})");
        }
        ensure!(
            self.until_decided == 0.0 || (self.every > 0 && self.resamples > 0),
            "importance.until_decided needs held-out passes during the search (importance.every) and a bootstrap \
             (importance.resamples)"
        );
        Ok(())
    }

    /// Whether epoch `epoch` (0-based) of `epochs` ends with a held-out pass.
    pub fn pass_after(&self, epoch: usize, epochs: usize) -> bool {
        epoch + 1 == epochs || (self.every > 0 && (epoch + 1).is_multiple_of(self.every))
    }
}

/// Everything a search needs; `agnas search` writes the resolved value to `config.toml` in the run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub struct SearchConfig<S: SpaceSections> {
    pub space: String,
    pub seed: u64,
    pub device: DeviceChoice,
    /// CPU threads for libtorch (0 = the cores not busy when the run starts).
    pub threads: usize,
    pub memory_format: MemoryFormat,
    /// The activations' type (runs written before it existed computed in fp32).
    #[serde(default)]
    pub precision: Precision,
    pub data: DataConfig,
    pub train: TrainConfig,
    pub importance: ImportanceConfig,
    pub supernet: S::Supernet,
    pub derive: S::Derive,
}

/// Everything a retrain needs; written to the run folder's `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub struct RetrainConfig<S: SpaceSections> {
    pub space: String,
    /// What the space's genotype parser takes: a built-in name, an arch string or index, a `genotype.json`, …
    pub genotype: String,
    pub seed: u64,
    pub device: DeviceChoice,
    pub threads: usize,
    pub memory_format: MemoryFormat,
    /// The activations' type (runs written before it existed computed in fp32).
    #[serde(default)]
    pub precision: Precision,
    /// Training images; `data.split` is the share that trains, the rest is the validation split (1 = none).
    pub data: DataConfig,
    /// Test images evaluated once, after the last epoch (e.g. CIFAR-10's test batch).
    #[serde(default)]
    pub test_data: Option<PathBuf>,
    pub test_format: DataFormat,
    pub network: S::Network,
    pub train: TrainConfig,
    pub eval_batch_size: usize,
}

/// Named starting points for a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::VariantNames)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Preset {
    /// The recipe of the space's paper or benchmark.
    Paper,
    /// A real but small run that fits minutes on 2 CPU cores (the default without `--data`).
    Embedded,
    /// A check that the pipeline runs end to end, in well under a minute.
    Smoke,
}

impl Preset {
    /// The preset a command starts from when none is named: the paper's recipe on a user's images, the embedded one
    /// on the images agnas ships.
    pub fn for_data(data: Option<&Path>) -> Self {
        if data.is_some() {
            Preset::Paper
        } else {
            Preset::Embedded
        }
    }
}

/// Where a run's configuration comes from, in any space: a preset, a file laid over it, the flags over both, and
/// the images and architecture a command names.
#[derive(Debug, Clone, Copy)]
pub struct Recipe<'a> {
    pub preset: Preset,
    pub file: Option<&'a Path>,
    pub given: &'a Overrides,
    pub data: Option<&'a Path>,
    /// The architecture a retrain trains (`--genotype`), laid over the file's.
    pub genotype: Option<&'a str>,
}

impl<'a> Recipe<'a> {
    /// A preset with the flags `given` over it, and nothing else.
    pub fn preset(preset: Preset, given: &'a Overrides) -> Self {
        Recipe { preset, file: None, given, data: None, genotype: None }
    }

    /// Preset ← file ← flags, for any configuration `preset` makes.
    pub fn layered<T: Serialize + DeserializeOwned>(&self, preset: impl FnOnce(Preset) -> T) -> Result<T> {
        layered(preset(self.preset), self.file, self.given)
    }
}

impl<S: SpaceSections> SearchConfig<S> {
    /// What every space's search preset shares; the space lays its own values over it.
    pub fn preset_base(preset: Preset) -> Self {
        let base = SearchConfig {
            space: S::NAME.to_string(),
            seed: 0,
            device: DeviceChoice::Auto,
            threads: 0,
            memory_format: MemoryFormat::Auto,
            precision: Precision::Fp32,
            data: DataConfig::default(),
            train: TrainConfig::default(),
            importance: ImportanceConfig::default(),
            supernet: S::Supernet::default(),
            derive: S::Derive::default(),
        };
        match preset {
            Preset::Paper => base,
            Preset::Embedded => SearchConfig { train: TrainConfig { checkpoint_every: 50, ..base.train }, ..base },
            Preset::Smoke => SearchConfig {
                data: DataConfig { per_class: 16, ..base.data },
                train: TrainConfig { epochs: 2, batch_size: 16, checkpoint_every: 0, ..base.train },
                importance: ImportanceConfig { batch_size: 32, ..base.importance },
                ..base
            },
        }
    }

    /// Rejects impossible values, naming the field.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.space == S::NAME, "space = \"{}\" in a configuration of the {} space", self.space, S::NAME);
        self.train.validate()?;
        self.importance.validate()?;
        let d = &self.data;
        ensure!(d.split > 0.0 && d.split < 1.0, "data.split must be strictly between 0 and 1 (got {})", d.split);
        d.validate()?;
        self.supernet.validate()?;
        self.derive.validate()
    }
}

impl<S: SpaceSections> RetrainConfig<S> {
    /// A preset scaled from the space's paper recipe `paper`: the network shape is the space's to set.
    pub fn scaled(paper: Self, preset: Preset) -> Self {
        match preset {
            Preset::Paper => paper,
            Preset::Embedded => RetrainConfig {
                data: DataConfig { split: 0.8, ..paper.data },
                train: TrainConfig { epochs: 10, checkpoint_every: 50, ..paper.train },
                ..paper
            },
            Preset::Smoke => RetrainConfig {
                data: DataConfig { per_class: 16, split: 0.75, ..paper.data },
                train: TrainConfig { epochs: 2, batch_size: 16, checkpoint_every: 0, ..paper.train },
                eval_batch_size: 32,
                ..paper
            },
        }
    }

    /// The fields a paper recipe does not decide.
    pub fn base(network: S::Network, train: TrainConfig) -> Self {
        RetrainConfig {
            space: S::NAME.to_string(),
            genotype: String::new(),
            seed: 0,
            device: DeviceChoice::Auto,
            threads: 0,
            memory_format: MemoryFormat::Auto,
            precision: Precision::Fp32,
            data: DataConfig { split: 1.0, ..DataConfig::default() },
            test_data: None,
            test_format: DataFormat::Auto,
            network,
            train,
            eval_batch_size: 256,
        }
    }

    /// Rejects impossible values, naming the field.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.space == S::NAME, "space = \"{}\" in a configuration of the {} space", self.space, S::NAME);
        self.train.validate()?;
        ensure!(
            self.data.split > 0.0 && self.data.split <= 1.0,
            "data.split (the training share) must be in (0, 1] (got {})",
            self.data.split
        );
        self.data.validate()?;
        ensure!(self.eval_batch_size > 0, "eval_batch_size must be at least 1");
        self.network.validate()
    }
}

macro_rules! run_config {
    ($($t:ident),*) => {$(
        impl<S: SpaceSections> RunConfig for $t<S> {
            fn seed(&self) -> u64 {
                self.seed
            }
            fn device(&self) -> DeviceChoice {
                self.device
            }
            fn threads(&self) -> usize {
                self.threads
            }
            fn memory_format(&self) -> MemoryFormat {
                self.memory_format
            }
            fn precision(&self) -> Precision {
                self.precision
            }
            fn data(&self) -> &DataConfig {
                &self.data
            }
            fn train(&self) -> &TrainConfig {
                &self.train
            }
            fn validate(&self) -> Result<()> {
                $t::validate(self)
            }
        }
    )*};
}
run_config!(SearchConfig, RetrainConfig);

/// Settings of every training run: a search, a retrain, a random search's candidates.
pub const RUN_SETTINGS: &[Setting] = &[
    Setting::new("seed", "seed", Kind::Int, "Seed of the weights, the data split and order, and the augmentation."),
    Setting::new("device", "device", named_kind::<DeviceChoice>(), "auto, cpu or cuda (a resumed run may change it).")
        .resumable(),
    Setting::new(
        "threads",
        "threads",
        Kind::Int,
        "CPU threads for libtorch (0 = the cores not busy when the run starts; give a number for bit-identical \
         reruns, since another count sums floats in another order; a resumed run may change it).",
    )
    .resumable(),
    Setting::new(
        "memory_format",
        "memory-format",
        named_kind::<MemoryFormat>(),
        "Memory layout: auto (channels-last on the CPU), channels_last or contiguous.",
    ),
    Setting::new(
        "precision",
        "precision",
        named_kind::<Precision>(),
        "Activations' type: fp32, or bf16 (mixed precision: weights, optimizer state, checkpoints, losses and \
         importances stay fp32; a resumed run may change it).",
    )
    .resumable(),
    Setting::new("data.format", "format", named_kind::<DataFormat>(), "Format of --data (default: guessed)."),
    Setting::new("data.per_class", "per-class", Kind::Int, "Images per class to use (balanced subset; 0 = all)."),
    Setting::new("data.workers", "workers", Kind::Int, "Data loading threads (a resumed run may change them).")
        .resumable(),
    Setting::new("train.epochs", "epochs", Kind::Int, "Training epochs."),
    Setting::new(
        "train.batch_size",
        "batch-size",
        Kind::Int,
        "Images per training step (the global batch; the learning rate is defined for it).",
    ),
    Setting::new(
        "train.micro_batches",
        "micro-batches",
        Kind::Int,
        "Forward-backward passes per step and rank, on equal parts of its batch (batch-norm statistics per part; one \
         process with M trains as M ranks would).",
    ),
    Setting::new("train.lr", "lr", Kind::Float, "Initial SGD learning rate."),
    Setting::new("train.augment.cutout", "cutout", Kind::Int, "Cutout length for training images (0 = off)."),
    Setting::new(
        "train.checkpoint_every",
        "checkpoint-every",
        Kind::Int,
        "Steps between mid-epoch checkpoints (0 = per epoch only).",
    ),
    Setting::new(
        "train.lr_step_at_epoch_start",
        "official-lr-schedule",
        Kind::Switch(true),
        "Step the LR schedule at epoch start, as the official code does.",
    ),
];

/// Settings of a search beside those of every run (the space's own are in its table).
pub const SEARCH_SETTINGS: &[Setting] = &[
    Setting::new("train.lr_min", "lr-min", Kind::Float, "Learning rate the cosine schedule ends at."),
    Setting::new("train.momentum", "momentum", Kind::Float, "SGD momentum."),
    Setting::new("train.weight_decay", "weight-decay", Kind::Float, "L2 weight decay of SGD."),
    Setting::new(
        "train.nesterov",
        "nesterov",
        Kind::Switch(true),
        "Nesterov momentum (the AutoDL NB201 recipe uses it with weight decay 5e-4).",
    ),
    Setting::new("train.grad_clip", "grad-clip", Kind::Float, "Global gradient-norm clip (0 = off)."),
    Setting::new(
        "data.split",
        "train-portion",
        Kind::Fraction,
        "Share of the images that trains the supernet (the rest is held out for the importances).",
    )
    .aliases(&["split"]),
    Setting::new(
        "data.split",
        "heldout-fraction",
        Kind::Complement,
        "Share of the images held out for the importances: --train-portion 1-F.",
    )
    .conflicts(&["train-portion"]),
    Setting::new(
        "data.heldout_path",
        "heldout-data",
        Kind::Path,
        "Held-out images of their own (class folders, e.g. the ImageNet subset's val/) instead of a share of --data, \
         which then all trains.",
    )
    .conflicts(&["train-portion", "heldout-fraction"]),
    Setting::new(
        "importance.augment",
        "augment-heldout",
        Kind::Switch(true),
        "Augment the held-out images during the importance pass, as the official code does.",
    ),
    Setting::new(
        "importance.every",
        "heldout-every",
        Kind::Int,
        "A held-out importance pass every K epochs besides the last (0 = after the last only): rankings, their rank \
         correlation and the decisions' confidence over time.",
    ),
    Setting::new(
        "importance.subset",
        "heldout-subset",
        Kind::Int,
        "Held-out images of the passes before the last (the first N of the held-out split; 0 = all).",
    ),
    Setting::new(
        "importance.resamples",
        "resamples",
        Kind::Int,
        "Bootstrap resamples of the held-out batches for each decision's confidence (0 = none).",
    ),
    Setting::new(
        "importance.min_confidence",
        "min-confidence",
        Kind::Share,
        "Warn about decisions less sure than this.",
    ),
    Setting::new(
        "importance.until_decided",
        "until-decided",
        Kind::Share,
        "Stop once every decision has stayed the same with confidence at least P in two consecutive held-out passes \
         (a pass every epoch unless --heldout-every says otherwise; 0 = never); the epoch budget still bounds the \
         search.",
    ),
    Setting::new(
        "importance.min_epochs",
        "min-epochs",
        Kind::Int,
        "Epochs trained before --until-decided may stop the search.",
    ),
];

/// Settings of a retrain beside those of every run (the network's are in the space's table).
pub const RETRAIN_SETTINGS: &[Setting] = &[
    Setting::new(
        "data.split",
        "train-portion",
        Kind::Share,
        "Share of the training images that trains; the rest is the validation split (1 = none).",
    )
    .aliases(&["split"]),
    Setting::new(
        "test_data",
        "test-data",
        Kind::Path,
        "Test images, evaluated once after the last epoch (CIFAR binary folders give their test batch).",
    ),
];

/// Overlays the tables of `top` onto `base`, key by key.
pub fn merge(base: &mut toml::Value, top: toml::Value) {
    match (base, top) {
        (toml::Value::Table(b), toml::Value::Table(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, t) => *b = t,
    }
}

/// A configuration file, parsed.
pub fn read_toml(path: &Path) -> Result<toml::Value, Error> {
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::ConfigRead { path: path.to_path_buf(), source })?;
    toml::from_str(&text).map_err(|source| Error::ConfigParse { path: path.to_path_buf(), source })
}

/// `preset` ← the TOML file at `path` ← `given`, as a `T`. Unknown keys are errors naming the file; a given key the
/// configuration lacks (a flag of another space) is an error naming the flag and the keys its section holds.
pub fn layered<T: Serialize + DeserializeOwned>(preset: T, path: Option<&Path>, given: &Overrides) -> Result<T> {
    let base = toml::Value::try_from(preset)?;
    let space = base.get("space").and_then(|s| s.as_str()).map(String::from);
    let mut value = base.clone();
    if let Some(path) = path {
        merge(&mut value, read_toml(path)?);
    }
    for o in &given.0 {
        // A key the preset leaves out (an optional path not set) is the configuration's if `T` takes it.
        let known = lookup(&base, &o.key).is_some() || {
            let mut probe = base.clone();
            insert(&mut probe, &o.key, o.value.clone()) && probe.try_into::<T>().is_ok()
        };
        if !known || !insert(&mut value, &o.key, o.value.clone()) {
            return Err(missing(&base, &o.key, space.as_deref(), &o.source));
        }
    }
    if let (Some(space), toml::Value::Table(t)) = (&space, &mut value) {
        t.insert("space".into(), toml::Value::String(space.clone()));
    }
    let source_name = match (path, given.is_empty()) {
        (Some(p), true) => p.display().to_string(),
        (Some(p), false) => format!("{} with the command-line flags", p.display()),
        (None, false) => "(command-line flags)".into(),
        (None, true) => "(preset)".into(),
    };
    value.try_into().map_err(|e: toml::de::Error| Error::Config { source_name, message: e.to_string() })
}

/// Sets the value at a dotted key whose table exists; false when it does not.
fn insert(value: &mut toml::Value, key: &str, v: toml::Value) -> bool {
    let (section, field) = key.rsplit_once('.').unwrap_or(("", key));
    let table = section.split('.').filter(|s| !s.is_empty()).try_fold(value, |t, k| t.get_mut(k));
    match table.and_then(|t| t.as_table_mut()) {
        Some(t) => {
            t.insert(field.to_string(), v);
            true
        }
        None => false,
    }
}

/// "`source`: the nb201 space has no supernet.layers (its [supernet] holds: …)".
fn missing(config: &toml::Value, key: &str, space: Option<&str>, source: &str) -> Error {
    let (section, _) = key.rsplit_once('.').unwrap_or(("", key));
    let table = if section.is_empty() { Some(config) } else { lookup(config, section) };
    let holds = match table.and_then(|t| t.as_table()) {
        Some(t) if t.is_empty() => "has no keys".to_string(),
        Some(t) => format!("holds: {}", t.keys().cloned().collect::<Vec<_>>().join(", ")),
        None => "does not exist".to_string(),
    };
    let whose = space.map_or("this configuration".to_string(), |s| format!("the {s} space"));
    let place = if section.is_empty() { "top level".to_string() } else { format!("[{section}]") };
    Error::UnknownKey {
        source_name: source.to_string(),
        key: key.to_string(),
        message: format!("{whose} has no {key} (its {place} {holds})"),
    }
}

/// The value at a dotted key, if every table on the way exists.
/// The [`Setting::resumable`] settings of a run configuration, as overrides: the machine it runs on, which a run it
/// starts (a random search's candidate) takes when resumed.
pub fn machine_of<C: Serialize>(config: &C) -> Result<Overrides> {
    let value = toml::Value::try_from(config)?;
    let mut machine = Overrides::default();
    for s in RUN_SETTINGS.iter().filter(|s| s.resumable) {
        if let Some(v) = lookup(&value, s.key) {
            machine.set(s.key, format!("--{}", s.flag), v.clone());
        }
    }
    Ok(machine)
}

pub fn lookup<'a>(value: &'a toml::Value, dotted: &str) -> Option<&'a toml::Value> {
    dotted.split('.').try_fold(value, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::{ColorJitter, RandomResizedCrop};
    use crate::space::{nb201::Nb201, Space};

    const IMAGENET: &str = r#"
[data]
heldout_path = "imagenet/val"
resize = 73
crop = 64
[data.normalization]
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
[train.augment]
crop_padding = 0
[train.augment.random_resized_crop]
size = 64
[train.augment.color_jitter]
brightness = 0.4
contrast = 0.4
saturation = 0.4
hue = 0.2
"#;

    #[test]
    fn the_imagenet_pipeline_is_set_from_toml_checked_and_written_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imagenet.toml");
        std::fs::write(&path, IMAGENET).unwrap();
        let paper = Nb201::search_preset(Preset::Paper);
        let c = layered(paper.clone(), Some(&path), &Overrides::default()).unwrap();
        c.validate().unwrap();
        assert_eq!(c.data.heldout_path.as_deref(), Some(Path::new("imagenet/val")));
        assert_eq!((c.data.resize, c.data.crop, c.data.split), (73, 64, paper.data.split));
        assert_eq!(c.data.normalization, Some(crate::data::Normalization::imagenet()));
        let a = c.train.augment;
        assert_eq!(a.random_resized_crop, Some(RandomResizedCrop { size: 64, ..RandomResizedCrop::default() }));
        assert_eq!(a.color_jitter, Some(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.2 }));
        assert!(a.hflip && a.crop_padding == 0, "keys the file leaves out keep the preset's values");
        let written = toml::to_string_pretty(&c).unwrap();
        assert_eq!(toml::from_str::<SearchConfig<Nb201>>(&written).unwrap(), c);

        // The defaults are today's pipeline: nothing new in a run folder's configuration but two zeros.
        let plain = toml::to_string_pretty(&paper).unwrap();
        for key in ["heldout_path", "normalization", "random_resized_crop", "color_jitter"] {
            assert!(!plain.contains(key), "{key} in\n{plain}");
        }
        assert!(plain.contains("resize = 0") && plain.contains("crop = 0"), "{plain}");

        let mut bad = c.clone();
        bad.data.resize = 60;
        assert!(format!("{}", bad.validate().unwrap_err()).contains("data.crop (64) must not exceed data.resize (60)"));
        let mut bad = c.clone();
        bad.data.normalization = Some(crate::data::Normalization { mean: vec![0.5], std: vec![0.0] });
        assert!(format!("{}", bad.validate().unwrap_err()).contains("data.normalization"));
        let mut bad = c;
        bad.train.augment.random_resized_crop = Some(RandomResizedCrop { scale: [0.0, 1.0], ..Default::default() });
        assert!(format!("{}", bad.validate().unwrap_err()).contains("train.augment.random_resized_crop.scale"));
        std::fs::write(&path, "[data]\nheldout = \"val\"\n").unwrap();
        let err = layered(paper, Some(&path), &Overrides::default()).unwrap_err();
        assert!(format!("{err}").contains("heldout"), "{err}");
    }
}
