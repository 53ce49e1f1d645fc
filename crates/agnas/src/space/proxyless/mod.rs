//! The ProxylessNAS macro space (AGNAS's ImageNet result): 21 layers, each one of six MBConvs or, where the layer
//! keeps shape, the identity; one SE attention module per layer over its candidates.
pub mod arch;
pub mod blocks;
pub mod cost;
pub mod derive;
pub mod latency;
pub mod network;
pub mod plot;
pub mod select;
pub mod supernet;

pub use arch::{Arch, LayerShape, MbConvKind};
pub use derive::ProxylessDeriveConfig;
pub use latency::{LatencyCosts, LatencySpec, LatencyTable};
pub use network::{ProxylessNetwork, ProxylessNetworkConfig};
pub use supernet::{ProxylessConfig, ProxylessSupernet, SearchBlock};

use super::{
    BenchBlock, Decider, Derived, EvalNetwork, FieldFlops, GenotypeFormat, Importances, Space, SpaceSections, Supernet,
    SupernetOutput,
};
use crate::config::settings::{Kind, Setting, ATTENTION_RATIO};
use crate::config::{Preset, RetrainConfig, SearchConfig};
use crate::data::augment::{Augment, ColorJitter, RandomResizedCrop};
use crate::data::{DataConfig, Normalization};
use crate::error::{Context, Result};
use crate::report::heatmap::importance_heatmap_svg;
use crate::train::{ClipBy, DecayRule, ScheduleKind, TrainConfig};
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

    fn training_logits(&self, xs: &Tensor) -> Tensor {
        self.forward_t(xs, true)
    }
}

impl SpaceSections for Proxyless {
    const NAME: &'static str = "proxyless";
    const SETTINGS: &'static [Setting] = &[
        Setting::new("supernet.width_mult", "width-mult", Kind::Float, "Channel multiplier of the supernet.").shape(),
        ATTENTION_RATIO,
        Setting::new(
            "derive.max_flops",
            "max-flops",
            Kind::Float,
            "Derive the best architecture with at most this many FLOPs (e.g. 6e8), chosen exactly; the whole budget \
             front is written either way (front.json, front.svg).",
        ),
        Setting::new(
            "derive.max_latency_ms",
            "max-latency-ms",
            Kind::Float,
            "Derive the best architecture with at most this latency by --latency-table, chosen exactly.",
        ),
        Setting::new(
            "derive.latency_table",
            "latency-table",
            Kind::Path,
            "A table written by `agnas latency-table`; the latency front is written too.",
        ),
        Setting::new("network.width_mult", "width-mult", Kind::Float, "Channel multiplier of the network.").shape(),
    ];
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
        return serde_json::from_value(arch.clone()).map_err(|e| crate::Error::Genotype {
            source_name: path.display().to_string(),
            message: format!("arch: {e}"),
        });
    }
    match spec.to_ascii_lowercase().as_str() {
        "released" => Ok(Arch::parse(arch::AGNAS)?),
        _ => Ok(Arch::parse(spec)?),
    }
}

/// The official macro geometry at `size` px: training images random-resized-cropped to `size` (scale from
/// `min_scale`) and flipped; the others resized to `size`·256/224 and centre-cropped to `size`.
fn geometry(size: usize, min_scale: f64) -> (Augment, DataConfig) {
    let augment = Augment {
        crop_padding: 0,
        hflip: true,
        random_resized_crop: Some(RandomResizedCrop { size, scale: [min_scale, 1.0], ..Default::default() }),
        ..Augment::none()
    };
    let data = DataConfig { resize: (size * 256).div_ceil(224), crop: size, ..DataConfig::default() };
    (augment, data)
}

/// The macro search recipe (spec §3.3): label smoothing 0.1, SGD 0.25 momentum 0.9, weight decay 4e-5 on
/// convolution weights and the classifier only, gradients clipped by value at 5, per-iteration linear LR with the
/// official floor and order, 120 epochs, batch 512; ImageNet augmentation with colour jitter; the held-out images
/// are 2.5 % of the training images, resized to 256 and centre-cropped to 224.
fn paper_search() -> (TrainConfig, DataConfig) {
    let (augment, data) = geometry(224, 0.08);
    let jitter = ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.2 };
    let train = TrainConfig {
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
        augment: Augment { color_jitter: Some(jitter), ..augment },
        checkpoint_every: 200,
        ..TrainConfig::default()
    };
    (train, DataConfig { split: 0.975, normalization: Some(Normalization::imagenet()), ..data })
}

/// The reduced search and retrain images: the CIFAR-10 images upsampled to 64 px.
const REDUCED_SIZE: usize = 64;

impl GenotypeFormat for Arch {
    fn parse(spec: &str) -> Result<Self> {
        parse_arch(spec)
    }

    fn validate(&self) -> Result<()> {
        Self::validate(self)
    }

    fn text(&self) -> String {
        format!("{self}\n")
    }

    /// The architecture at width 1 and 224 px, the resolutions and channels it is known by.
    fn pictures(&self, title: &str) -> Vec<(String, String)> {
        vec![("arch.svg".into(), plot::arch_svg(self, &arch::layer_shapes(1.0, 224), title))]
    }

    fn parameter_free_share(&self) -> f64 {
        self.0.iter().filter(|slot| slot.is_none()).count() as f64 / arch::LAYERS as f64
    }
}

impl Space for Proxyless {
    type Genotype = Arch;
    type Derivation = derive::Derivation;
    type Findings = derive::Findings;
    const REFERENCE_INPUT: (i64, i64) = (224, 1000);

    /// `embedded` is a real search sized for 2 CPU cores (BENCHMARKS.md): 64 px, width 0.5, 90 % of the images
    /// train and 10 % are held out (9,000 / 1,000 of the embedded CIFAR-10 subset; 18,000 / 2,000 of the provided
    /// images with `--per-class 2000`), 6 epochs, batch 64 with the LR scaled to it, no colour jitter.
    fn search_preset(preset: Preset) -> SearchConfig<Self> {
        let base = SearchConfig::<Self>::preset_base(preset);
        let (train, data) = paper_search();
        let paper = SearchConfig {
            data: DataConfig { path: None, ..data },
            train,
            importance: crate::config::ImportanceConfig { batch_size: 512, ..base.importance.clone() },
            ..base.clone()
        };
        let reduced = |size: usize, train: TrainConfig, data: DataConfig| {
            let (augment, geometry) = geometry(size, 0.25);
            SearchConfig {
                data: DataConfig { resize: geometry.resize, crop: geometry.crop, normalization: None, ..data },
                train: TrainConfig { augment, lr: 0.25 * train.batch_size as f64 / 512.0, ..train },
                importance: base.importance.clone(),
                ..paper.clone()
            }
        };
        match preset {
            Preset::Paper => paper,
            Preset::Embedded => SearchConfig {
                supernet: ProxylessConfig { width_mult: 0.5, ..paper.supernet.clone() },
                ..reduced(
                    REDUCED_SIZE,
                    TrainConfig { epochs: 6, batch_size: 64, checkpoint_every: 50, ..paper.train.clone() },
                    DataConfig { per_class: 1000, split: 0.9, ..base.data.clone() },
                )
            },
            Preset::Smoke => SearchConfig {
                supernet: ProxylessConfig { width_mult: 0.25, ..paper.supernet.clone() },
                ..reduced(
                    32,
                    TrainConfig { epochs: 2, batch_size: 16, checkpoint_every: 0, ..paper.train.clone() },
                    base.data.clone(),
                )
            },
        }
    }

    fn build_supernet(cfg: &ProxylessConfig, p: &nn::Path, in_channels: i64, num_classes: i64) -> Box<dyn Supernet> {
        Box::new(ProxylessSupernet::new(p, cfg, in_channels, num_classes))
    }

    /// Layers whose depthwise convolution sees 2×2 pixels or fewer: there kernels 3, 5 and 7 cover the same pixels
    /// (the larger ones only add weights on padding), so the attention cannot tell kernels apart for a reason.
    fn input_warnings(cfg: &ProxylessConfig, image_size: (i64, i64)) -> Vec<String> {
        let side = image_size.0.min(image_size.1);
        let small: Vec<String> = arch::layer_shapes(cfg.width_mult, side)
            .iter()
            .enumerate()
            .filter(|(_, s)| s.out_size() <= 2)
            .map(|(l, _)| l.to_string())
            .collect();
        if small.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "at {side} px layers {} run at 2×2 or smaller: their k3, k5 and k7 candidates see the same pixels, so \
             the kernel chosen there says little (use larger images for a search that should tell kernels apart)",
            small.join(", ")
        )]
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

    fn derive(
        cfg: &ProxylessConfig,
        derive: &ProxylessDeriveConfig,
        importances: &Importances,
    ) -> Result<Derived<derive::Derivation, derive::Findings>> {
        let (arch, mut derived) = derive::derive(cfg, derive, importances)?;
        let bars =
            plot::attention_bars_svg(&derive::layer_rows(importances)?, &arch.slots(), "Held-out attention per layer");
        let pictures = arch.pictures("found architecture").into_iter().chain([("attention.svg".to_string(), bars)]);
        derived.files.extend(pictures.map(|(name, svg)| (name, svg.into_bytes())));
        Ok(derived)
    }

    fn decider(_: &ProxylessConfig, derive: &ProxylessDeriveConfig) -> Result<Decider> {
        derive::decider(derive)
    }

    fn from_choices(_: &ProxylessConfig, choices: &[&str]) -> Result<Arch> {
        let slots = choices
            .iter()
            .map(|c| {
                (0..arch::MAX_CANDIDATES)
                    .find(|&slot| arch::candidate_label(slot) == *c)
                    .with_context(|| format!("`{c}` is no block of the macro space"))
            })
            .collect::<Result<Vec<usize>>>()?;
        Arch::from_slots(&slots)
    }

    fn random_genotype(_: &ProxylessConfig, _: &ProxylessDeriveConfig, rng: &mut dyn rand::RngCore) -> Arch {
        use rand::Rng;
        let slots: Vec<usize> = (0..arch::LAYERS)
            .map(|l| rng.gen_range(0..if arch::skippable(l) { arch::MAX_CANDIDATES } else { arch::MBCONVS }))
            .collect();
        Arch::from_slots(&slots).expect("skips only where a layer keeps its shape")
    }

    /// The official retrain (spec §3.4): SGD 0.5 momentum 0.9, weight decay 4e-5 on convolution weights only,
    /// label smoothing 0.1, gradient-norm clip 5, per-iteration linear LR to 0, 240 epochs, batch 1024, dropout 0.2,
    /// random-resized crop and flip (Fast-AutoAugment is not implemented), evaluation at 256/224.
    fn retrain_preset(preset: Preset) -> RetrainConfig<Self> {
        let (augment, data) = geometry(224, 0.08);
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
            augment,
            checkpoint_every: 200,
            ..TrainConfig::default()
        };
        let base = RetrainConfig::base(ProxylessNetworkConfig::default(), train);
        let paper = RetrainConfig {
            genotype: arch::AGNAS.to_string(),
            data: DataConfig { normalization: Some(Normalization::imagenet()), ..data },
            ..base
        };
        let scaled = RetrainConfig::scaled(paper, preset);
        let (size, width) = match preset {
            Preset::Paper => return scaled,
            Preset::Embedded => (REDUCED_SIZE, 0.5),
            Preset::Smoke => (32, 0.25),
        };
        let (augment, geometry) = geometry(size, 0.25);
        let batch_size = scaled.train.batch_size.min(64);
        RetrainConfig {
            network: ProxylessNetworkConfig { width_mult: width, ..scaled.network },
            data: DataConfig { resize: geometry.resize, crop: geometry.crop, normalization: None, ..scaled.data },
            train: TrainConfig { augment, batch_size, lr: 0.5 * batch_size as f64 / 1024.0, ..scaled.train },
            ..scaled
        }
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

    fn field_flops(
        cfg: &ProxylessNetworkConfig,
        genotype: &Arch,
        num_classes: i64,
        image_size: i64,
    ) -> Option<FieldFlops> {
        let model = cost::CostModel::new(cfg.width_mult, image_size, num_classes);
        let rule = cost::FlopsRule::Table;
        let flops = model.arch(genotype, rule);
        Some(FieldFlops { flops, flops_m: (flops as f64 / 1e4).round() / 100.0, flops_rule: rule.describe() })
    }

    fn importance_svg(described: &serde_json::Value, title: &str, notes: &[String]) -> Result<String> {
        let values: Vec<Vec<f64>> = serde_json::from_value(described["values"].clone())?;
        let skippable: Vec<bool> = serde_json::from_value(described["skippable"].clone())?;
        // Rows as long as the layer has candidates: a layer without the identity shows six squares.
        let rows: Vec<Vec<f64>> = values
            .iter()
            .zip(&skippable)
            .enumerate()
            .map(|(l, (row, &skip))| {
                let n = if skip { arch::MAX_CANDIDATES } else { arch::MBCONVS };
                row.get(..n)
                    .map(<[f64]>::to_vec)
                    .with_context(|| format!("layer {l} has {} values, not {n}", row.len()))
            })
            .collect::<Result<_>>()?;
        let labels: Vec<String> = (0..rows.len()).map(|l| format!("layer {l}")).collect();
        let candidates: Vec<String> = (0..arch::MAX_CANDIDATES).map(arch::candidate_label).collect();
        let names: Vec<&str> = candidates.iter().map(String::as_str).collect();
        Ok(importance_heatmap_svg(&[rows], &["21 layers".to_string()], &labels, &names, title, notes))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_released_architectures_skips_are_its_parameter_free_share() {
        // Five of its 21 ids are -1.
        assert_eq!(Arch::parse(arch::AGNAS).unwrap().parameter_free_share(), 5.0 / 21.0);
    }

    #[test]
    fn small_inputs_warn_about_kernels_that_see_the_same_pixels() {
        let cfg = ProxylessConfig::default();
        assert!(Proxyless::input_warnings(&cfg, (224, 224)).is_empty());
        let warning = Proxyless::input_warnings(&cfg, (64, 64)).join("\n");
        assert!(warning.contains("layers 16, 17, 18, 19, 20 run at 2×2"), "{warning}");
    }

    #[test]
    fn presets_validate_and_follow_the_official_recipes() {
        for preset in [Preset::Paper, Preset::Embedded, Preset::Smoke] {
            Proxyless::search_preset(preset).validate().unwrap();
            Proxyless::retrain_preset(preset).validate().unwrap();
        }
        let search = Proxyless::search_preset(Preset::Paper);
        assert_eq!((search.train.epochs, search.train.batch_size, search.train.lr), (120, 512, 0.25));
        assert_eq!(search.data.split, 0.975, "2.5 % held out");
        let retrain = Proxyless::retrain_preset(Preset::Paper);
        assert_eq!((retrain.train.epochs, retrain.train.batch_size, retrain.network.dropout), (240, 1024, 0.2));
        assert_eq!(retrain.train.weight_decay_on, DecayRule::ConvWeights);
    }

    /// An importances file with a layer cut short is an error naming the layer, not a panic.
    #[test]
    fn a_short_layer_in_the_importances_is_an_error() {
        let mut values = vec![vec![1.0; arch::MAX_CANDIDATES]; arch::LAYERS];
        let described = |values: &[Vec<f64>]| serde_json::json!({"values": values, "skippable": (0..arch::LAYERS).map(arch::skippable).collect::<Vec<_>>()});
        assert!(Proxyless::importance_svg(&described(&values), "t", &[]).is_ok());
        let l = (0..arch::LAYERS).find(|&l| arch::skippable(l)).unwrap();
        values[l].truncate(arch::MBCONVS);
        let err = Proxyless::importance_svg(&described(&values), "t", &[]).unwrap_err().to_string();
        assert!(err.contains(&format!("layer {l} has {} values", arch::MBCONVS)), "{err}");
    }
}
