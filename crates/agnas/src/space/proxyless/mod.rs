//! The ProxylessNAS macro space (AGNAS's ImageNet result): 21 layers, each one of six MBConvs or, where the layer
//! keeps shape, the identity; one SE attention module per layer over its candidates.
pub mod arch;
pub mod blocks;
pub mod cost;
pub mod derive;
pub mod latency;
pub mod network;
pub mod supernet;

pub use arch::{Arch, LayerShape, MbConvKind};
pub use derive::ProxylessDeriveConfig;
pub use latency::{LatencyCosts, LatencySpec, LatencyTable};
pub use network::{ProxylessNetwork, ProxylessNetworkConfig};
pub use supernet::{ProxylessConfig, ProxylessSupernet, SearchBlock};

use super::{
    BenchBlock, Derived, EvalNetwork, Importances, Section, Space, SpaceSections, Supernet, SupernetOutput,
    TrainingStep,
};
use crate::config::{Preset, RetrainConfig, SearchConfig};
use crate::report::heatmap::importance_heatmap_svg;
use crate::train::{cross_entropy, ClipBy, DecayRule, ScheduleKind, TrainConfig};
use anyhow::{Context, Result};
use blocks::{ConvInit, MbConv};
use tch::nn;
use tch::Tensor;

/// The ProxylessNAS macro space.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Proxyless;

const AXES: [&str; 2] = ["layer", "candidate"];

impl Supernet for ProxylessSupernet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> SupernetOutput {
        ProxylessSupernet::forward_t(self, xs, train)
    }
}

impl EvalNetwork for ProxylessNetwork {
    fn logits(&self, xs: &Tensor) -> Tensor {
        self.forward_t(xs, false)
    }

    fn training_loss(&self, xs: &Tensor, y: &Tensor, step: TrainingStep) -> (Tensor, Tensor) {
        let logits = self.forward_t(xs, true);
        let loss = cross_entropy(&logits, y, step.label_smoothing);
        (logits, loss)
    }
}

impl Section for ProxylessConfig {
    fn validate(&self) -> Result<()> {
        ProxylessConfig::validate(self)
    }
}

impl Section for ProxylessDeriveConfig {
    fn validate(&self) -> Result<()> {
        ProxylessDeriveConfig::validate(self)
    }
}

impl Section for ProxylessNetworkConfig {
    fn validate(&self) -> Result<()> {
        ProxylessNetworkConfig::validate(self)
    }
}

impl SpaceSections for Proxyless {
    const NAME: &'static str = "proxyless";
    type Supernet = ProxylessConfig;
    type Derive = ProxylessDeriveConfig;
    type Network = ProxylessNetworkConfig;
}

/// An architecture from its id string, `released` (the AGNAS paper's; `agnas` already names the DARTS-space
/// cells), or a JSON file holding it under `arch` (a search's `genotype.json`) or as a string.
fn parse_arch(spec: &str) -> Result<Arch> {
    let path = std::path::Path::new(spec);
    if path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading genotype {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing genotype {}", path.display()))?;
        let arch = value.get("arch").unwrap_or(&value);
        return serde_json::from_value(arch.clone()).map_err(|e| {
            crate::Error::Genotype { source_name: path.display().to_string(), message: format!("arch: {e}") }.into()
        });
    }
    match spec.to_ascii_lowercase().as_str() {
        "released" => Ok(Arch::parse(arch::AGNAS)?),
        _ => Ok(Arch::parse(spec)?),
    }
}

/// The macro search recipe (spec §3.3): label smoothing 0.1, SGD 0.25 momentum 0.9, weight decay 4e-5 on
/// convolution weights and the classifier only, gradients clipped by value at 5, per-iteration linear LR with the
/// official floor and order, 120 epochs, batch 512; the held-out images are 2.5 % of the training images.
fn paper_search_train() -> TrainConfig {
    TrainConfig {
        epochs: 120,
        batch_size: 512,
        lr: 0.25,
        lr_min: 5e-4,
        momentum: 0.9,
        weight_decay: 4e-5,
        weight_decay_on: DecayRule::ConvWeightsAndClassifier,
        nesterov: false,
        grad_clip: 5.0,
        grad_clip_by: ClipBy::Value,
        schedule: ScheduleKind::Linear,
        lr_step_at_epoch_start: true,
        label_smoothing: 0.1,
        checkpoint_every: 200,
        ..TrainConfig::default()
    }
}

impl Space for Proxyless {
    type Genotype = Arch;
    const REFERENCE_INPUT: (i64, i64) = (224, 1000);

    fn search_preset(preset: Preset) -> SearchConfig<Self> {
        let base = SearchConfig::<Self>::preset_base(preset);
        let paper = SearchConfig {
            data: crate::data::DataConfig { split: 0.975, ..base.data.clone() },
            train: paper_search_train(),
            importance: crate::config::ImportanceConfig { batch_size: 512, ..base.importance.clone() },
            ..base.clone()
        };
        match preset {
            Preset::Paper => paper,
            Preset::Embedded => SearchConfig {
                data: crate::data::DataConfig { split: 0.9, ..base.data },
                train: TrainConfig {
                    epochs: 6,
                    batch_size: 64,
                    lr: 0.25 * 64.0 / 512.0,
                    checkpoint_every: 50,
                    ..paper.train
                },
                importance: base.importance,
                supernet: ProxylessConfig { width_mult: 0.5, ..paper.supernet.clone() },
                ..paper
            },
            Preset::Smoke => SearchConfig {
                data: base.data,
                train: TrainConfig { epochs: 2, batch_size: 16, checkpoint_every: 0, ..paper.train },
                importance: base.importance,
                supernet: ProxylessConfig { width_mult: 0.25, ..paper.supernet.clone() },
                ..paper
            },
        }
    }

    fn build_supernet(cfg: &ProxylessConfig, p: &nn::Path, in_channels: i64, num_classes: i64) -> Box<dyn Supernet> {
        Box::new(ProxylessSupernet::new(p, cfg, in_channels, num_classes))
    }

    fn importances(_: &ProxylessConfig, importance: &Tensor) -> Result<Importances> {
        Ok(Importances::from_tensor(&AXES, importance)?.with_mask(derive::mask()))
    }

    fn describe(_: &ProxylessConfig, importances: &Importances) -> serde_json::Value {
        serde_json::json!({
            "axes": AXES,
            "candidates": (0..arch::MAX_CANDIDATES).map(arch::candidate_label).collect::<Vec<_>>(),
            "skippable": (0..arch::LAYERS).map(arch::skippable).collect::<Vec<_>>(),
            "values": importances.nested(),
            "mask": importances.nested_mask(),
        })
    }

    fn derive(cfg: &ProxylessConfig, derive: &ProxylessDeriveConfig, importances: &Importances) -> Result<Derived> {
        let (arch, mut derived) = derive::derive(cfg, derive, importances)?;
        let heatmap = Self::importance_svg(&Self::describe(cfg, importances), super::HELDOUT_HEATMAP_TITLE)?;
        derived.files = Self::pictures(&arch, "found architecture")
            .into_iter()
            .chain([("importance.svg".to_string(), heatmap)])
            .map(|(name, svg)| (name, svg.into_bytes()))
            .collect();
        Ok(derived)
    }

    fn parse_genotype(spec: &str) -> Result<Arch> {
        parse_arch(spec)
    }

    fn validate_genotype(genotype: &Arch) -> Result<()> {
        Ok(genotype.validate()?)
    }

    fn genotype_text(genotype: &Arch) -> String {
        format!("{genotype}\n")
    }

    fn pictures(_genotype: &Arch, _title: &str) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The official retrain (spec §3.4): SGD 0.5 momentum 0.9, weight decay 4e-5 on convolution weights only,
    /// label smoothing 0.1, gradient-norm clip 5, per-iteration linear LR to 0, 240 epochs, batch 1024, dropout 0.2.
    fn retrain_preset(preset: Preset) -> RetrainConfig<Self> {
        let train = TrainConfig {
            epochs: 240,
            batch_size: 1024,
            lr: 0.5,
            lr_min: 0.0,
            momentum: 0.9,
            weight_decay: 4e-5,
            weight_decay_on: DecayRule::ConvWeights,
            nesterov: false,
            grad_clip: 5.0,
            grad_clip_by: ClipBy::Norm,
            schedule: ScheduleKind::Linear,
            lr_step_at_epoch_start: false,
            label_smoothing: 0.1,
            checkpoint_every: 200,
            ..TrainConfig::default()
        };
        let paper = RetrainConfig {
            genotype: arch::AGNAS.to_string(),
            ..RetrainConfig::base(ProxylessNetworkConfig::default(), train)
        };
        let scaled = RetrainConfig::scaled(paper, preset);
        let network = match preset {
            Preset::Paper => scaled.network,
            Preset::Embedded => ProxylessNetworkConfig { width_mult: 0.5, ..scaled.network },
            Preset::Smoke => ProxylessNetworkConfig { width_mult: 0.25, ..scaled.network },
        };
        let train = match preset {
            Preset::Paper => scaled.train,
            _ => TrainConfig { batch_size: scaled.train.batch_size.min(64), lr: 0.5 * 64.0 / 1024.0, ..scaled.train },
        };
        RetrainConfig { network, train, ..scaled }
    }

    fn build_network(
        cfg: &ProxylessNetworkConfig,
        genotype: &Arch,
        p: &nn::Path,
        in_channels: i64,
        num_classes: i64,
    ) -> Box<dyn EvalNetwork> {
        Box::new(ProxylessNetwork::new(p, cfg, genotype, in_channels, num_classes))
    }

    fn costs(cfg: &ProxylessNetworkConfig, genotype: &Arch, num_classes: i64, image_size: i64) -> serde_json::Value {
        let model = cost::CostModel::new(cfg.width_mult, image_size, num_classes);
        let rule = cost::FlopsRule::Table;
        serde_json::json!({
            "flops": model.arch(genotype, rule),
            "flops_m": ((model.arch(genotype, rule) as f64 / 1e4).round() / 100.0),
            "flops_rule": rule.describe(),
        })
    }

    fn importance_svg(described: &serde_json::Value, title: &str) -> Result<String> {
        let values: Vec<Vec<f64>> = serde_json::from_value(described["values"].clone())?;
        let skippable: Vec<bool> = serde_json::from_value(described["skippable"].clone())?;
        // Rows as long as the layer has candidates: a layer without the identity shows six squares.
        let rows: Vec<Vec<f64>> = values
            .iter()
            .zip(&skippable)
            .map(|(row, &skip)| row[..if skip { arch::MAX_CANDIDATES } else { arch::MBCONVS }].to_vec())
            .collect();
        let labels: Vec<String> = (0..rows.len()).map(|l| format!("layer {l}")).collect();
        let candidates: Vec<String> = (0..arch::MAX_CANDIDATES).map(arch::candidate_label).collect();
        let names: Vec<&str> = candidates.iter().map(String::as_str).collect();
        Ok(importance_heatmap_svg(&[rows], &["21 layers".to_string()], &labels, &names, title))
    }

    fn bench_blocks(p: &nn::Path, c: i64, b: i64) -> Vec<BenchBlock> {
        let x = vec![b, c, 32, 32];
        let mbconv = |name: &str, k: usize| MbConv::new(p / name, c, c, MbConvKind::of(k), 1, ConvInit::FanOutNormal);
        let shape = LayerShape { inp: c, oup: c, stride: 1, size: 32 };
        let block = SearchBlock::new(&(p / "block"), shape, 16);
        vec![
            BenchBlock::module("mbconv_k3e3", x.clone(), mbconv("k3e3", 0)),
            BenchBlock::module("mbconv_k7e6", x.clone(), mbconv("k7e6", 5)),
            BenchBlock::new("search_block", vec![x], move |xs| block.forward_t(&xs[0], true).0),
        ]
    }
}
