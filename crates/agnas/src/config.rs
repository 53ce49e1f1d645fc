//! Run configurations: a space's preset ← TOML file ← command-line flags, written back into the run folder as
//! `config.toml`. The sections a space owns (`[supernet]`, `[derive]`, `[network]`) have its own types.
use crate::data::{DataConfig, DataFormat};
use crate::train::{DeviceChoice, MemoryFormat, RunConfig, TrainConfig};
use crate::Error;
use anyhow::{ensure, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

/// A section of a run's configuration that a space owns (`[supernet]`, `[derive]`, `[network]`).
pub trait Section: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Default {
    /// Rejects impossible values, naming the field.
    fn validate(&self) -> Result<()>;
}

/// What a configuration needs of a search space: its name and the types of its sections.
pub trait SpaceSections: Debug + Clone + Copy + PartialEq + Default + 'static {
    /// The name in `space = "…"` and on the command line.
    const NAME: &'static str;
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
    /// CPU threads for libtorch (0 = libtorch's default).
    pub threads: usize,
    pub memory_format: MemoryFormat,
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

impl<S: SpaceSections> SearchConfig<S> {
    /// What every space's search preset shares; the space lays its own values over it.
    pub fn preset_base(preset: Preset) -> Self {
        let base = SearchConfig {
            space: S::NAME.to_string(),
            seed: 0,
            device: DeviceChoice::Auto,
            threads: 0,
            memory_format: MemoryFormat::Auto,
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
    let source_name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config { source_name: source_name.clone(), message: format!("reading: {e}") })?;
    toml::from_str(&text).map_err(|e| Error::Config { source_name, message: e.to_string() })
}

/// Command-line settings of a space's sections, by dotted key (`supernet.channels`).
#[derive(Debug, Clone, Default)]
pub struct SectionFlags(Vec<(String, &'static str, toml::Value)>);

impl SectionFlags {
    /// `key = value`, given on the command line as `flag`.
    pub fn set(&mut self, key: &str, flag: &'static str, value: impl Into<toml::Value>) {
        self.0.push((key.to_string(), flag, value.into()));
    }

    /// `key = value` for each flag that was given.
    pub fn given<V: Into<toml::Value>>(
        mut self,
        flags: impl IntoIterator<Item = (&'static str, &'static str, Option<V>)>,
    ) -> Self {
        for (key, flag, value) in flags {
            if let Some(v) = value {
                self.set(key, flag, v);
            }
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `preset` ← the TOML file at `path` ← `flags`, as a `T`. Unknown keys are errors naming the file; a flag whose key
/// the space's sections lack is an error naming the flag.
pub fn layered<T: Serialize + DeserializeOwned>(preset: T, path: Option<&Path>, flags: &SectionFlags) -> Result<T> {
    let mut value = toml::Value::try_from(preset)?;
    let space = value.get("space").cloned();
    if let Some(path) = path {
        merge(&mut value, read_toml(path)?);
    }
    for (key, flag, v) in &flags.0 {
        let (section, field) = key.split_once('.').unwrap_or(("", key));
        let slot = value.get_mut(section).and_then(|s| s.get_mut(field));
        let Some(slot) = slot else {
            let known = value.get(section).and_then(|s| s.as_table()).map(|t| t.keys().cloned().collect::<Vec<_>>());
            let holds = match known.unwrap_or_default() {
                keys if keys.is_empty() => "has no keys".to_string(),
                keys => format!("holds: {}", keys.join(", ")),
            };
            return Err(Error::Config {
                source_name: flag.to_string(),
                message: format!("this space has no {key} (its [{section}] {holds})"),
            }
            .into());
        };
        *slot = v.clone();
    }
    if let (Some(space), toml::Value::Table(t)) = (space, &mut value) {
        t.insert("space".into(), space);
    }
    let source_name = match (path, flags.is_empty()) {
        (Some(p), true) => p.display().to_string(),
        (Some(p), false) => format!("{} with the command-line flags", p.display()),
        (None, false) => "(command-line flags)".into(),
        (None, true) => "(preset)".into(),
    };
    value.try_into().map_err(|e: toml::de::Error| Error::Config { source_name, message: e.to_string() }.into())
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
        let c = layered(paper.clone(), Some(&path), &SectionFlags::default()).unwrap();
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
        let err = layered(paper, Some(&path), &SectionFlags::default()).unwrap_err();
        assert!(format!("{err}").contains("heldout"), "{err}");
    }
}
