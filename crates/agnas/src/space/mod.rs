//! Search spaces. Each folder holds one space: its configuration sections and presets, supernet, importances,
//! genotype, derivation, evaluation network, counting and pictures, behind the [`Space`] trait. [`SpaceName`] names
//! them; `crate::registry` turns a name into a space.
pub mod confidence;
pub mod darts;
pub mod importance;
pub mod nb201;
pub mod proxyless;

pub use confidence::{Decider, Decision};
pub use importance::Importances;

use crate::config::{Preset, RetrainConfig, SearchConfig};
pub use crate::config::{Section, SpaceSections};
use crate::error::Result;
use crate::nn::flops;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

/// Logits and the attention importances of one supernet forward.
pub struct SupernetOutput {
    pub logits: Tensor,
    /// Σ over batch and channels of each candidate's gates, shape (decision points…, candidates), detached.
    pub importance: Tensor,
}

/// A supernet whose every decision point carries an AGNAS attention module.
pub trait Supernet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> SupernetOutput;
}

/// Where a training forward of an evaluation network stands, and the loss it is trained with.
#[derive(Debug, Clone, Copy)]
pub struct TrainingStep {
    pub epoch: usize,
    pub epochs: usize,
    pub label_smoothing: f64,
}

/// A network built from a genotype and trained from scratch; it exports its eval-mode forward.
pub trait EvalNetwork: crate::nn::Export {
    /// Logits in eval mode.
    fn logits(&self, xs: &Tensor) -> Tensor;
    /// Logits of a training forward (BN on batch statistics, dropout).
    fn training_logits(&self, xs: &Tensor) -> Tensor;
    /// A training forward: the logits and the loss, cross-entropy unless the network has regularisers of its own
    /// (an auxiliary head, drop-path).
    fn training_loss(&self, xs: &Tensor, y: &Tensor, step: TrainingStep) -> (Tensor, Tensor) {
        let logits = self.training_logits(xs);
        let loss = crate::train::cross_entropy(&logits, y, step.label_smoothing);
        (logits, loss)
    }
    /// The drop-path probability of epoch `epoch` of `epochs` (0 for networks without drop-path).
    fn drop_path(&self, _epoch: usize, _epochs: usize) -> f64 {
        0.0
    }
}

/// What a search produced, for the run folder: `G` is what `genotype.json` holds, `F` what the space adds to
/// `result.json`; both are the space's own types until a search adds its confidence to them ([`Derived::erase`]).
pub struct Derived<G = serde_json::Value, F = serde_json::Value> {
    /// One line naming the architecture (the NB201 arch string, …).
    pub name: String,
    /// `genotype.json`: the genotype and how it was read off the importances.
    pub genotype: G,
    /// Extra facts for `result.json` (the benchmark record, …), written as they are.
    pub result: F,
    /// Lines for the terminal after the search (what the architecture is worth, where known).
    pub report: Vec<String>,
    /// A Markdown section for `summary.md` showing how the choice was made.
    pub details_md: String,
    /// More files for the run folder, by name (genotype text, pictures).
    pub files: Vec<(String, Vec<u8>)>,
}

impl<G: Serialize, F: Serialize> Derived<G, F> {
    /// As the JSON documents the run folder holds.
    pub fn erase(self) -> Result<Derived> {
        Ok(Derived {
            name: self.name,
            genotype: serde_json::to_value(&self.genotype)?,
            result: serde_json::to_value(&self.result)?,
            report: self.report,
            details_md: self.details_md,
            files: self.files,
        })
    }
}

/// A block's training-mode forward from its inputs.
pub type BlockForward = Box<dyn Fn(&[Tensor]) -> Tensor>;

/// A building block of a supernet timed by `agnas bench blocks`: its input shapes and its forward.
pub struct BenchBlock {
    pub name: &'static str,
    pub inputs: Vec<Vec<i64>>,
    pub forward: BlockForward,
}

impl BenchBlock {
    pub fn new(name: &'static str, inputs: Vec<Vec<i64>>, forward: impl Fn(&[Tensor]) -> Tensor + 'static) -> Self {
        BenchBlock { name, inputs, forward: Box::new(forward) }
    }

    pub fn module(name: &'static str, input: Vec<i64>, m: impl nn::ModuleT + 'static) -> Self {
        BenchBlock::new(name, vec![input], move |xs| m.forward_t(&xs[0], true))
    }

    /// A ReLU-first op, fed as the mixed op feeds it (the ReLU is part of the timed block).
    pub fn after_relu(name: &'static str, input: Vec<i64>, m: impl crate::nn::AfterRelu + 'static) -> Self {
        BenchBlock::new(name, vec![input], move |xs| m.forward_relu(&xs[0].relu(), true))
    }
}

/// FLOPs of one image as a space's field counts them, and the rule they follow (`agnas params` prints them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldFlops {
    pub flops: u64,
    /// In millions, to two decimals.
    pub flops_m: f64,
    pub flops_rule: &'static str,
}

/// Parameters (as the space counts them) and multiply-accumulates of one image of an evaluation network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub params: i64,
    pub macs: u64,
}

/// A table of trained architectures that a space's genotypes are looked up in (NAS-Bench-201): what generic code
/// (reports, the random baseline) needs to know of it, so that it never names the table's keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Benchmark {
    /// The key of its record in a run's `result.json`.
    pub key: &'static str,
    /// The record's metrics that judge an architecture; the first is the one a sentence names.
    pub headline: &'static [&'static str],
    /// The first headline metric in words.
    pub described: &'static str,
}

impl Benchmark {
    /// The first headline metric of a record.
    pub fn first(&self, record: &serde_json::Value) -> Option<f64> {
        record.get(self.headline.first()?)?.as_f64()
    }

    /// The headline metrics as dotted paths of `result.json` (`bench201.c10_test`).
    pub fn paths(&self) -> Vec<String> {
        self.headline.iter().map(|m| format!("{}.{m}", self.key)).collect()
    }
}

/// A space's genotype as users give, check, read and see it.
pub trait GenotypeFormat: Serialize + DeserializeOwned + Clone + std::fmt::Debug {
    /// From what a user types: a built-in name, an arch string, a file.
    fn parse(spec: &str) -> Result<Self>;
    /// Checks a genotype read from a file a user may have edited.
    fn validate(&self) -> Result<()>;
    /// As the field writes it (Python text, an arch string).
    fn text(&self) -> String;
    /// Pictures, by file name.
    fn pictures(&self, title: &str) -> Vec<(String, String)>;
    /// The share of the chosen ops that have no parameters (skip, pools, `none`), the collapse that DARTS-style
    /// searches are known for; a search reports it over its decisions, a random search over its pick.
    fn parameter_free_share(&self) -> f64;
}

/// A table of trained architectures of genotypes `G` (NAS-Bench-201).
pub trait BenchmarkTable<G>: Sync {
    /// What generic code needs to know of the table.
    fn about(&self) -> Benchmark;
    /// What the table records of a genotype, if it holds it.
    fn record(&self, genotype: &G) -> Option<serde_json::Value>;
}

/// A search space.
pub trait Space: SpaceSections {
    type Genotype: GenotypeFormat;
    /// What `genotype.json` holds: the genotype and how it was read off the importances.
    type Derivation: Serialize;
    /// What a search of the space adds to `result.json` (the benchmark record, the other derivation, costs).
    type Findings: Serialize;
    /// (image side, classes) of the benchmark the space's networks are measured on.
    const REFERENCE_INPUT: (i64, i64) = (32, 10);

    /// The search configuration of a preset.
    fn search_preset(preset: Preset) -> SearchConfig<Self>;
    fn build_supernet(cfg: &Self::Supernet, p: &nn::Path, in_channels: i64, num_classes: i64) -> Box<dyn Supernet>;
    /// Warnings about running the supernet on images of `image_size` (height, width).
    fn input_warnings(_cfg: &Self::Supernet, _image_size: (i64, i64)) -> Vec<String> {
        Vec::new()
    }
    /// Names the axes of a supernet's importance tensor and marks the candidates that do not exist.
    fn importances(cfg: &Self::Supernet, importance: &Tensor) -> Result<Importances>;
    /// The importances as `importances.json` holds them, with the labels of every axis.
    fn describe(cfg: &Self::Supernet, importances: &Importances) -> serde_json::Value;
    /// The architecture read off held-out importances.
    fn derive(
        cfg: &Self::Supernet,
        derive: &Self::Derive,
        importances: &Importances,
    ) -> Result<Derived<Self::Derivation, Self::Findings>>;
    /// The decisions [`Space::derive`] makes, as a function of the importances (for the bootstrap of their
    /// confidence, which derives hundreds of times).
    fn decider(cfg: &Self::Supernet, derive: &Self::Derive) -> Result<Decider>;
    /// The genotype made of one choice per decision point, as [`Decision::choice`] writes them (a consensus of
    /// several searches).
    fn from_choices(cfg: &Self::Supernet, choices: &[&str]) -> Result<Self::Genotype>;
    /// A genotype drawn uniformly from those the derivation can produce under `derive` (random search).
    fn random_genotype(cfg: &Self::Supernet, derive: &Self::Derive, rng: &mut dyn rand::RngCore) -> Self::Genotype;
    /// The table of trained architectures the space's genotypes are looked up in, if it has one (a capability:
    /// generic code asks for it and never names its keys).
    fn benchmark() -> Option<&'static dyn BenchmarkTable<Self::Genotype>> {
        None
    }

    /// The retrain configuration of a preset.
    fn retrain_preset(preset: Preset) -> RetrainConfig<Self>;
    fn build_network(
        cfg: &Self::Network,
        genotype: &Self::Genotype,
        p: &nn::Path,
        in_channels: i64,
        num_classes: i64,
    ) -> Box<dyn EvalNetwork>;

    /// The FLOPs of a genotype as the space's field counts them, beyond params and MACs (the official table's rule
    /// of the macro space), if the field has its own rule.
    fn field_flops(
        _cfg: &Self::Network,
        _genotype: &Self::Genotype,
        _num_classes: i64,
        _image_size: i64,
    ) -> Option<FieldFlops> {
        None
    }

    /// Whether the parameter `name` of the evaluation network counts in its size (the field leaves out heads used in
    /// training only).
    fn counts_param(_name: &str) -> bool {
        true
    }

    /// The network shape that fits a weights file holding the tensors `names` (released checkpoints may carry heads
    /// that the paper's recipe would leave out, or lack them).
    fn fit_to_weights(_network: &mut Self::Network, _names: &[&str]) {}

    /// The heatmap of one pass of `importances.json` (what [`Space::describe`] wrote), with `notes` under it.
    fn importance_svg(described: &serde_json::Value, title: &str, notes: &[String]) -> Result<String>;
    /// The building blocks of the supernet at `c` channels and batch `b`, 32×32, for `agnas bench blocks`.
    fn bench_blocks(p: &nn::Path, c: i64, b: i64) -> Vec<BenchBlock>;
}

/// The trainable parameters the space counts (as the field's `count_parameters_in_MB` does) and MACs of one
/// `in_channels` × `image_size` image in eval mode.
pub fn count<S: Space>(
    cfg: &S::Network,
    genotype: &S::Genotype,
    in_channels: i64,
    num_classes: i64,
    image_size: (i64, i64),
) -> Counts {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = S::build_network(cfg, genotype, &vs.root(), in_channels, num_classes);
    let x = Tensor::zeros([1, in_channels, image_size.0, image_size.1], (Kind::Float, Device::Cpu));
    let (_, macs) = tch::no_grad(|| flops::count_macs(|| net.logits(&x)));
    let params = vs
        .variables()
        .iter()
        .filter(|(name, v)| v.requires_grad() && S::counts_param(name))
        .map(|(_, v)| v.numel() as i64)
        .sum();
    Counts { params, macs }
}

/// The spaces agnas knows: the registry.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SpaceName {
    #[default]
    Nb201,
    Darts,
    Proxyless,
}

impl SpaceName {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every registered space.
    pub fn all() -> impl Iterator<Item = SpaceName> {
        <SpaceName as strum::VariantNames>::VARIANTS.iter().filter_map(|n| n.parse().ok())
    }

    /// Parses a name, listing the known ones when it is not one of them.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        s.parse().map_err(|_| crate::Error::UnknownSpace {
            name: s.to_string(),
            known: <SpaceName as strum::VariantNames>::VARIANTS.join(", "),
        })
    }
}

impl std::fmt::Display for SpaceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{layered, Overrides, Preset, SearchConfig};
    use crate::error::Result;
    use crate::space::darts::Darts;
    use crate::space::nb201::Nb201;
    use crate::train::MemoryFormat;
    use std::path::Path;

    fn nb201(preset: Preset, path: Option<&Path>, flags: &Overrides) -> Result<SearchConfig<Nb201>> {
        layered(Nb201::search_preset(preset), path, flags)
    }

    #[test]
    fn file_overrides_preset_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "seed = 3\n[train]\nepochs = 7\n[supernet]\nchannels = 12\n").unwrap();
        let cfg = nb201(Preset::Smoke, Some(&path), &Overrides::default()).unwrap();
        assert_eq!((cfg.seed, cfg.train.epochs, cfg.supernet.channels), (3, 7, 12));
        assert_eq!(
            cfg.train.batch_size,
            Nb201::search_preset(Preset::Smoke).train.batch_size,
            "untouched keys keep the preset"
        );
        let back: SearchConfig<Nb201> = toml::from_str(&toml::to_string_pretty(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn unknown_keys_flags_and_bad_values_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[train]\nepochz = 7\n").unwrap();
        let err = nb201(Preset::Paper, Some(&path), &Overrides::default()).unwrap_err().report();
        assert!(err.contains("epochz") && err.contains("bad.toml"), "{err}");
        let mut flags = Overrides::default();
        flags.set("supernet.layers", "--layers", 8);
        let err = nb201(Preset::Paper, None, &flags).unwrap_err().report();
        assert!(err.contains("--layers") && err.contains("cells_per_stage"), "{err}");
        let mut cfg = Nb201::search_preset(Preset::Paper);
        cfg.data.split = 1.0;
        assert!(format!("{}", cfg.validate().unwrap_err()).contains("data.split"));
        let mut cfg = Nb201::search_preset(Preset::Paper);
        cfg.train.lr = f64::NAN;
        assert!(format!("{}", cfg.validate().unwrap_err()).contains("train.lr"));
        for preset in [Preset::Paper, Preset::Embedded, Preset::Smoke] {
            Nb201::search_preset(preset).validate().unwrap();
            Darts::search_preset(preset).validate().unwrap();
            Nb201::retrain_preset(preset).validate().unwrap();
            Darts::retrain_preset(preset).validate().unwrap();
        }
        assert_eq!(Darts::search_preset(Preset::Paper).importance.every, 1);
    }

    #[test]
    fn memory_format_is_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layout.toml");
        std::fs::write(&path, "memory_format = \"contiguous\"\n").unwrap();
        let cfg = nb201(Preset::Smoke, Some(&path), &Overrides::default()).unwrap();
        assert_eq!(cfg.memory_format, MemoryFormat::Contiguous);
        std::fs::write(&path, "memory_format = \"sideways\"\n").unwrap();
        let err = nb201(Preset::Smoke, Some(&path), &Overrides::default()).unwrap_err().report();
        assert!(err.contains("memory_format") && err.contains("layout.toml"), "{err}");
    }
}
