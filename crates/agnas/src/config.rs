//! The search configuration: preset defaults ← TOML file ← command-line flags, written back into the run folder.
use crate::data::DataConfig;
use crate::space::darts::DartsConfig;
use crate::space::nb201::{DeriveConfig, Nb201Config};
use crate::space::SpaceName;
use crate::train::{DeviceChoice, MemoryFormat, TrainConfig};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The held-out pass that accumulates the importances the architecture is derived from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportanceConfig {
    /// Augment the held-out images as in training (the official code does; the paper forwards them as they are).
    pub augment: bool,
    /// Run the held-out pass after every epoch, not only after the last.
    pub every_epoch: bool,
    pub batch_size: usize,
}

impl Default for ImportanceConfig {
    fn default() -> Self {
        ImportanceConfig { augment: false, every_epoch: false, batch_size: 128 }
    }
}

/// Everything a search needs; `agnas search` writes the resolved value to `config.toml` in the run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    pub space: SpaceName,
    pub seed: u64,
    pub device: DeviceChoice,
    /// CPU threads for libtorch (0 = libtorch's default).
    pub threads: usize,
    pub memory_format: MemoryFormat,
    pub data: DataConfig,
    pub train: TrainConfig,
    pub importance: ImportanceConfig,
    pub nb201: Nb201Config,
    pub darts: DartsConfig,
    /// How the NB201 genotype is read off (the DARTS space always takes its top-2 rule).
    pub derive: DeriveConfig,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            space: SpaceName::Nb201,
            seed: 0,
            device: DeviceChoice::Auto,
            threads: 0,
            memory_format: MemoryFormat::Auto,
            data: DataConfig::default(),
            train: TrainConfig::default(),
            importance: ImportanceConfig::default(),
            nb201: Nb201Config::default(),
            darts: DartsConfig::default(),
            derive: DeriveConfig::default(),
        }
    }
}

/// Named starting points for a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// The paper's recipe (50 epochs, batch 64; NB201 C=16, N=5; DARTS C=16, 8 cells, held-out pass every epoch).
    Paper,
    /// A real but small search that fits about 10 minutes on 2 CPU cores (the default without `--data`).
    Embedded,
    /// A check that the pipeline runs end to end, in well under a minute.
    Smoke,
}

impl std::str::FromStr for Preset {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "paper" => Ok(Preset::Paper),
            "embedded" => Ok(Preset::Embedded),
            "smoke" => Ok(Preset::Smoke),
            _ => bail!("unknown preset `{s}` (paper, embedded, smoke)"),
        }
    }
}

impl Preset {
    pub fn config(self, space: SpaceName) -> SearchConfig {
        let base = SearchConfig { space, ..SearchConfig::default() };
        let darts = space == SpaceName::Darts;
        match self {
            // The official DARTS-space search accumulates the held-out attention after every epoch.
            Preset::Paper => {
                SearchConfig { importance: ImportanceConfig { every_epoch: darts, ..base.importance }, ..base }
            }
            Preset::Embedded => SearchConfig {
                data: DataConfig { per_class: if darts { 500 } else { 1000 }, ..base.data },
                train: TrainConfig { epochs: if darts { 6 } else { 10 }, checkpoint_every: 50, ..base.train },
                // Wide and shallow learns far faster in a short budget than narrow and deep at the same step time
                // (C=16, N=1: 53 % supernet accuracy after 10 epochs; C=8, N=2: 24 %).
                nb201: Nb201Config { channels: 16, cells_per_stage: 1, ..base.nb201 },
                // Five cells keep both reductions and a normal cell in every stage.
                darts: DartsConfig { channels: 8, layers: 5, ..base.darts },
                ..base
            },
            Preset::Smoke => SearchConfig {
                data: DataConfig { per_class: 16, ..base.data },
                train: TrainConfig { epochs: 2, batch_size: 16, checkpoint_every: 0, ..base.train },
                importance: ImportanceConfig { batch_size: 32, ..base.importance },
                nb201: Nb201Config { channels: 4, cells_per_stage: 1, ..base.nb201 },
                darts: DartsConfig { channels: 4, layers: 5, ..base.darts },
                ..base
            },
        }
    }
}

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

impl crate::train::RunConfig for SearchConfig {
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
        SearchConfig::validate(self)
    }
}

impl SearchConfig {
    /// `preset` for `space` (else the file's `space`, else NB201) with the TOML file at `path` laid over it;
    /// unknown keys are errors that name the file.
    pub fn from_preset_and_file(preset: Preset, space: Option<SpaceName>, path: Option<&Path>) -> Result<Self> {
        let top: Option<toml::Value> = match path {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
                Some(toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?)
            }
            None => None,
        };
        let file_space = match top.as_ref().and_then(|t| t.get("space")) {
            Some(v) => Some(v.clone().try_into::<SpaceName>().with_context(|| {
                format!("config {}: space", path.map_or(String::new(), |p| p.display().to_string()))
            })?),
            None => None,
        };
        let space = space.or(file_space).unwrap_or_default();
        let mut value = toml::Value::try_from(preset.config(space))?;
        if let Some(top) = top {
            merge(&mut value, top);
        }
        if let toml::Value::Table(t) = &mut value {
            t.insert("space".into(), toml::Value::String(space.as_str().into()));
        }
        let cfg: SearchConfig = value
            .try_into()
            .with_context(|| format!("config {}", path.map_or("(preset)".into(), |p| p.display().to_string())))?;
        Ok(cfg)
    }

    /// Reads a resolved configuration (a run folder's `config.toml`).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Rejects impossible values, naming the field.
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        ensure!(self.importance.batch_size > 0, "importance.batch_size must be at least 1");
        let d = &self.data;
        ensure!(d.split > 0.0 && d.split < 1.0, "data.split must be strictly between 0 and 1 (got {})", d.split);
        ensure!(d.workers > 0, "data.workers must be at least 1");
        ensure!(d.prefetch > 0, "data.prefetch must be at least 1");
        let n = &self.nb201;
        ensure!(n.channels >= 2, "nb201.channels must be at least 2 (got {})", n.channels);
        ensure!(n.cells_per_stage >= 1, "nb201.cells_per_stage must be at least 1 (got {})", n.cells_per_stage);
        ensure!(
            n.attention_ratio >= 1 && n.attention_ratio <= 5 * n.channels,
            "nb201.attention_ratio must be in 1..={} (got {})",
            5 * n.channels,
            n.attention_ratio
        );
        let d = &self.darts;
        ensure!(d.channels >= 2 && d.channels % 2 == 0, "darts.channels must be even and >= 2 (got {})", d.channels);
        ensure!(
            d.layers >= 5,
            "darts.layers must be at least 5, so that every stage slot has its own cell (got {})",
            d.layers
        );
        ensure!(d.steps >= 1, "darts.steps must be at least 1");
        ensure!(d.stem_multiplier >= 1, "darts.stem_multiplier must be at least 1");
        ensure!(
            d.attention_ratio >= 1 && d.attention_ratio <= 8 * d.channels,
            "darts.attention_ratio must be in 1..={} (got {})",
            8 * d.channels,
            d.attention_ratio
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_preset_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "seed = 3\n[train]\nepochs = 7\n[nb201]\nchannels = 12\n").unwrap();
        let cfg = SearchConfig::from_preset_and_file(Preset::Smoke, None, Some(&path)).unwrap();
        assert_eq!((cfg.seed, cfg.train.epochs, cfg.nb201.channels), (3, 7, 12));
        assert_eq!(
            cfg.train.batch_size,
            Preset::Smoke.config(SpaceName::Nb201).train.batch_size,
            "untouched keys keep the preset"
        );
        let back: SearchConfig = toml::from_str(&cfg.to_toml().unwrap()).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[train]\nepochz = 7\n").unwrap();
        let err = format!("{:#}", SearchConfig::from_preset_and_file(Preset::Paper, None, Some(&path)).unwrap_err());
        assert!(err.contains("epochz") && err.contains("bad.toml"), "{err}");
        let mut cfg = SearchConfig::default();
        cfg.data.split = 1.0;
        assert!(format!("{}", cfg.validate().unwrap_err()).contains("data.split"));
        let mut cfg = SearchConfig::default();
        cfg.train.lr = f64::NAN;
        assert!(format!("{}", cfg.validate().unwrap_err()).contains("train.lr"));
        for preset in [Preset::Paper, Preset::Embedded, Preset::Smoke] {
            for space in [SpaceName::Nb201, SpaceName::Darts] {
                preset.config(space).validate().unwrap();
            }
        }
        assert!(Preset::Paper.config(SpaceName::Darts).importance.every_epoch);
    }

    #[test]
    fn memory_format_is_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layout.toml");
        std::fs::write(&path, "memory_format = \"contiguous\"\n").unwrap();
        let cfg = SearchConfig::from_preset_and_file(Preset::Smoke, None, Some(&path)).unwrap();
        assert_eq!(cfg.memory_format, MemoryFormat::Contiguous);
        std::fs::write(&path, "memory_format = \"sideways\"\n").unwrap();
        let err = format!("{:#}", SearchConfig::from_preset_and_file(Preset::Smoke, None, Some(&path)).unwrap_err());
        assert!(err.contains("memory_format") && err.contains("layout.toml"), "{err}");
    }
}
