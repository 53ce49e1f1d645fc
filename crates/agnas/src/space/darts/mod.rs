//! The DARTS space (spec §2.1): 14-edge cells with 8 candidate ops; one genotype per supernet cell.
pub mod derive;
pub mod genotype;
pub mod network;
pub mod plot;
pub mod python;
pub mod supernet;

pub use genotype::{CellGenotype, CellKind, DartsOp, Genotype};
pub use network::{NetworkCifar, NetworkConfig};
pub use supernet::{DartsConfig, DartsSupernet};

use super::{
    BenchBlock, Decider, Derived, EvalNetwork, GenotypeFormat, Importances, Section, Space, SpaceSections, Supernet,
    SupernetOutput, TrainingStep,
};
use crate::config::settings::{Kind, Setting, ATTENTION_RATIO};
use crate::config::{Preset, RetrainConfig, SearchConfig};
use crate::data::augment::Augment;
use crate::data::DataConfig;
use crate::error::{bail, Context, Result};
use crate::nn::ops::{DilConv, FactorizedReduce, Identity, Pool, PoolKind, SepConv, Zero};
use crate::nn::{Export, Graph, Layer, Node, Value};
use crate::report::heatmap::importance_heatmap_svg;
use crate::train::cross_entropy;
use crate::train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// The DARTS space.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Darts;

const AXES: [&str; 3] = ["cell", "edge", "op"];

/// `[derive]` of the DARTS space: the top-2 rule of DARTS, which never picks `none` unless `allow_none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DartsDerive {
    /// Let `none` be an edge's op and count towards a node's input strengths (the official code never does).
    #[serde(default)]
    pub allow_none: bool,
}

impl Section for DartsDerive {
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

impl Section for DartsConfig {
    fn validate(&self) -> Result<()> {
        DartsConfig::validate(self)
    }
}

impl Section for NetworkConfig {
    fn validate(&self) -> Result<()> {
        NetworkConfig::validate(self)
    }
}

/// The evaluation network with its regularisers.
struct DartsEval {
    net: NetworkCifar,
    cfg: NetworkConfig,
}

impl Export for DartsEval {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        self.net.export(g, x)
    }
}

impl EvalNetwork for DartsEval {
    fn logits(&self, xs: &Tensor) -> Tensor {
        self.net.forward_t(xs, false, 0.0).logits
    }

    fn training_logits(&self, xs: &Tensor) -> Tensor {
        self.net.forward_t(xs, true, 0.0).logits
    }

    fn training_loss(&self, xs: &Tensor, y: &Tensor, step: TrainingStep) -> (Tensor, Tensor) {
        let output = self.net.forward_t(xs, true, self.drop_path(step.epoch, step.epochs));
        let main = cross_entropy(&output.logits, y, step.label_smoothing);
        let loss = match &output.aux {
            Some(aux) => main + self.cfg.auxiliary_weight * cross_entropy(aux, y, step.label_smoothing),
            None => main,
        };
        (output.logits, loss)
    }

    /// Ramped linearly from 0 to `drop_path` at the last epoch.
    fn drop_path(&self, epoch: usize, epochs: usize) -> f64 {
        self.cfg.drop_path * epoch as f64 / epochs as f64
    }
}

/// A genotype from a built-in name, `random:<seed>`, a JSON file (a bare genotype, or a search's `genotype.json`),
/// or a file of Python text.
pub fn resolve_genotype(spec: &str) -> Result<Genotype> {
    if let Some(g) = Genotype::builtin(spec) {
        return Ok(g);
    }
    if let Some(seed) = spec.strip_prefix("random:") {
        let seed: u64 = seed.parse().with_context(|| format!("genotype `{spec}`: the seed must be an integer"))?;
        return Ok(Genotype::random(seed));
    }
    let path = Path::new(spec);
    if !path.exists() {
        bail!(
            "genotype `{spec}` is neither a built-in ({}), nor random:<seed>, nor an existing file",
            genotype::BUILTIN_NAMES.join(", ")
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading genotype {}", path.display()))?;
    let genotype = if text.trim_start().starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing genotype {}", path.display()))?;
        let inner = value.get("genotype").cloned().unwrap_or(value);
        serde_json::from_value(inner).with_context(|| format!("genotype {}", path.display()))?
    } else {
        python::parse(&text).with_context(|| format!("genotype {}", path.display()))?
    };
    genotype.validate().with_context(|| format!("genotype {}", path.display()))?;
    Ok(genotype)
}

/// One op as the DARTS code base builds it (`OPS[name](C, stride, affine)`); a strided skip is a FactorizedReduce.
fn op(p: nn::Path, o: DartsOp, c: i64, stride: i64, affine: bool) -> Box<dyn Layer> {
    match o {
        DartsOp::SepConv3x3 => Box::new(SepConv::new(p, c, c, 3, stride, affine)),
        DartsOp::SepConv5x5 => Box::new(SepConv::new(p, c, c, 5, stride, affine)),
        DartsOp::DilConv3x3 => Box::new(DilConv::new(p, c, c, 3, stride, 2, affine)),
        DartsOp::DilConv5x5 => Box::new(DilConv::new(p, c, c, 5, stride, 2, affine)),
        DartsOp::SkipConnect if stride == 1 => Box::new(Identity),
        DartsOp::SkipConnect => Box::new(FactorizedReduce::new(p, c, c, affine)),
        DartsOp::AvgPool3x3 => Box::new(Pool { kind: PoolKind::Avg, stride }),
        DartsOp::MaxPool3x3 => Box::new(Pool { kind: PoolKind::Max, stride }),
        DartsOp::None => Box::new(Zero { stride }),
    }
}

impl Supernet for DartsSupernet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> SupernetOutput {
        DartsSupernet::forward_t(self, xs, train)
    }
}

/// The states a cell's edges read, in `_ops` order: `2<-0` is node 2 (the first intermediate node) from c_{k-2}.
pub fn edge_labels(steps: usize) -> Vec<String> {
    (0..steps).flat_map(|i| (0..i + 2).map(move |j| format!("{}<-{j}", i + 2))).collect()
}

/// Edge labels for pictures, nodes counted from 0 as in the DARTS figures: `1←c_{k-2}`, `2←0`.
pub fn node_edge_labels(steps: usize) -> Vec<String> {
    let input = |j: usize| match j {
        0 => "c_{k-2}".to_string(),
        1 => "c_{k-1}".to_string(),
        j => (j - 2).to_string(),
    };
    (0..steps).flat_map(|i| (0..i + 2).map(move |j| format!("{i}←{}", input(j)))).collect()
}

/// `Cell_<i>` as the official code logs the per-cell genotypes.
fn cell_name(i: usize) -> String {
    format!("Cell_{i}")
}

/// One line per cell: `op~input` pairs of a node joined by `,`, nodes by `+`.
fn cell_string(cell: &CellGenotype) -> String {
    cell.ops
        .chunks(2)
        .map(|p| p.iter().map(|(o, i)| format!("{o}~{i}")).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join("+")
}

impl DartsConfig {
    /// The supernet cells that become the evaluation network's five stage slots: the first cell of each stage and
    /// both reductions, as the released AGNAS genotype takes Cell_0, Cell_2, Cell_3, Cell_5 and Cell_6 of eight.
    pub fn stage_cells(&self) -> [usize; 5] {
        let l = self.layers;
        let (r1, r2) = (l / 3, 2 * l / 3);
        [0, r1, r1 + 1, r2, r2 + 1]
    }
}

impl SpaceSections for Darts {
    const NAME: &'static str = "darts";
    const SETTINGS: &'static [Setting] = &[
        Setting::new(
            "supernet.channels",
            "channels",
            Kind::Int,
            "Channels C of the first cells (doubled at each reduction).",
        )
        .shape(),
        Setting::new("supernet.layers", "layers", Kind::Int, "Cells of the supernet.").shape(),
        ATTENTION_RATIO,
        Setting::new(
            "derive.allow_none",
            "allow-none",
            Kind::Switch(true),
            "Let `none` win a node input: off by default, since no gradient reaches a zero output's gates.",
        ),
        Setting::new(
            "network.channels",
            "channels",
            Kind::Int,
            "Channels C of the first cells (doubled at each reduction).",
        )
        .shape(),
        Setting::new("network.layers", "layers", Kind::Int, "Cells of the network.").shape(),
        Setting::new("network.auxiliary", "no-auxiliary", Kind::Switch(false), "Train without the auxiliary head."),
        Setting::new(
            "network.auxiliary_weight",
            "auxiliary-weight",
            Kind::Float,
            "Weight of the auxiliary head's loss.",
        ),
        Setting::new("network.drop_path", "drop-path", Kind::Share, "Drop-path probability at the last epoch."),
    ];
    type Supernet = DartsConfig;
    type Derive = DartsDerive;
    type Network = NetworkConfig;
}

/// `genotype.json` of a search: the genotype of the network's stages, and every cell of the supernet as derived.
#[derive(Debug, Serialize)]
pub struct Derivation {
    space: &'static str,
    genotype: Genotype,
    /// The cells whose genotypes make the stages.
    stage_cells: Vec<String>,
    cells: Vec<DerivedCell>,
    allow_none: bool,
}

/// One supernet cell's genotype.
#[derive(Debug, Serialize)]
pub struct DerivedCell {
    name: String,
    kind: CellKind,
    channels: i64,
    #[serde(flatten)]
    cell: CellGenotype,
}

/// What a search adds to `result.json`: the genotype the other `none` rule gives from the same importances.
#[derive(Debug, Serialize)]
pub struct Findings {
    other_derivation: OtherDerivation,
}

#[derive(Debug, Serialize)]
pub struct OtherDerivation {
    allow_none: bool,
    arch: String,
}

impl GenotypeFormat for Genotype {
    fn parse(spec: &str) -> Result<Self> {
        resolve_genotype(spec)
    }

    fn validate(&self) -> Result<()> {
        Self::validate(self)
    }

    fn text(&self) -> String {
        python::to_python(self)
    }

    /// One picture per distinct cell: `normal` and `reduce`, or `stage_<i>` for the five-cell form (a search also
    /// draws every supernet cell, `cell_<i>`; its genotype.json says which cell each stage took).
    fn pictures(&self, title: &str) -> Vec<(String, String)> {
        let cells: Vec<(String, &CellGenotype, CellKind)> = match self {
            Genotype::NormalReduce { normal, reduce } => {
                vec![("normal".into(), normal, CellKind::Normal), ("reduce".into(), reduce, CellKind::Reduce)]
            }
            Genotype::Stages { cells } => cells
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("stage_{i}"), c, if i % 2 == 1 { CellKind::Reduce } else { CellKind::Normal }))
                .collect(),
        };
        cells
            .into_iter()
            .map(|(name, cell, kind)| {
                let svg = plot::cell_svg(cell, kind, &format!("{title}: {name}"));
                (format!("{name}.svg"), svg)
            })
            .collect()
    }

    fn parameter_free_share(&self) -> f64 {
        let cells = match self {
            Genotype::NormalReduce { normal, reduce } => vec![normal, reduce],
            Genotype::Stages { cells } => cells.iter().collect(),
        };
        let ops: Vec<DartsOp> = cells.iter().flat_map(|c| c.ops.iter().map(|(op, _)| *op)).collect();
        ops.iter().filter(|op| op.parameter_free()).count() as f64 / ops.len().max(1) as f64
    }
}

impl Space for Darts {
    type Genotype = Genotype;
    type Derivation = Derivation;
    type Findings = Findings;

    fn search_preset(preset: Preset) -> SearchConfig<Self> {
        let base = SearchConfig::<Self>::preset_base(preset);
        match preset {
            // The official DARTS-space search accumulates the held-out attention after every epoch.
            Preset::Paper => {
                SearchConfig { importance: crate::config::ImportanceConfig { every: 1, ..base.importance }, ..base }
            }
            // Five cells keep both reductions and a normal cell in every stage.
            Preset::Embedded => SearchConfig {
                data: DataConfig { per_class: 500, ..base.data },
                train: TrainConfig { epochs: 6, ..base.train },
                supernet: DartsConfig { channels: 8, layers: 5, ..base.supernet },
                ..base
            },
            Preset::Smoke => SearchConfig { supernet: DartsConfig { channels: 4, layers: 5, ..base.supernet }, ..base },
        }
    }

    fn build_supernet(cfg: &DartsConfig, p: &nn::Path, in_channels: i64, num_classes: i64) -> Box<dyn Supernet> {
        Box::new(DartsSupernet::new(p, cfg, in_channels, num_classes))
    }

    fn importances(_: &DartsConfig, importance: &Tensor) -> Result<Importances> {
        Importances::from_tensor(&AXES, importance)
    }

    fn describe(cfg: &DartsConfig, importances: &Importances) -> serde_json::Value {
        let cells: Vec<serde_json::Value> = cfg
            .cells()
            .iter()
            .enumerate()
            .map(|(i, (kind, c))| serde_json::json!({ "name": cell_name(i), "kind": kind, "channels": c }))
            .collect();
        let ops: Vec<&str> = DartsOp::ALL.iter().map(|o| o.name()).collect();
        serde_json::json!({
            "axes": AXES,
            "cells": cells,
            "edges": edge_labels(cfg.steps),
            "ops": ops,
            "values": importances.nested(),
        })
    }

    fn derive(
        cfg: &DartsConfig,
        derive: &DartsDerive,
        importances: &Importances,
    ) -> Result<Derived<Derivation, Findings>> {
        let values = importances.to_vec3()?;
        let kinds = cfg.cells();
        crate::error::ensure!(
            values.len() == kinds.len(),
            "importances cover {} cells, the supernet has {}",
            values.len(),
            kinds.len()
        );
        let derive_cells = |allow_none: bool| -> Result<Vec<CellGenotype>> {
            values
                .iter()
                .enumerate()
                .map(|(i, v)| derive::derive_cell(v, cfg.steps, allow_none).with_context(|| cell_name(i)))
                .collect()
        };
        let cells = derive_cells(derive.allow_none)?;
        let stages = cfg.stage_cells();
        let stage_name =
            |cells: &[CellGenotype]| stages.iter().map(|&i| cell_string(&cells[i])).collect::<Vec<_>>().join(" / ");
        let genotype = Genotype::Stages { cells: stages.iter().map(|&i| cells[i].clone()).collect() };
        genotype.validate()?;
        let per_cell: Vec<DerivedCell> = cells
            .iter()
            .zip(&kinds)
            .enumerate()
            .map(|(i, (cell, &(kind, channels)))| DerivedCell {
                name: cell_name(i),
                kind,
                channels,
                cell: cell.clone(),
            })
            .collect();
        let mut details = String::from(
            "Per-cell genotypes (top-2 edges per node by the held-out attention; pictures in `cell_<i>.svg`, \
             importances in `importance.svg`, Python text in `genotype.py`):\n\n\
             | cell | kind | C | stage slot | genotype |\n|---|---|---|---|---|\n",
        );
        for (i, (cell, (kind, c))) in cells.iter().zip(&kinds).enumerate() {
            let slot = stages.iter().position(|&s| s == i).map_or(String::from("–"), |s| s.to_string());
            details.push_str(&format!("| {} | {kind:?} | {c} | {slot} | `{}` |\n", cell_name(i), cell_string(cell)));
        }
        let name = stage_name(&cells);
        let other = stage_name(&derive_cells(!derive.allow_none)?);
        let mut report = Vec::new();
        if other != name {
            let with = if derive.allow_none { "without `none`" } else { "with `none` allowed" };
            report.push(format!("{with} the same importances give {other}"));
        }
        let titles: Vec<String> =
            kinds.iter().enumerate().map(|(i, (kind, c))| format!("{} ({kind:?}, C={c})", cell_name(i))).collect();
        let mut files = vec![(
            "genotype.py".to_string(),
            python::cells_to_python(
                &kinds.iter().map(|(k, _)| *k).zip(cells.iter().cloned()).collect::<Vec<_>>(),
                &stages,
                "AGNAS",
            )
            .into_bytes(),
        )];
        for (i, (cell, (kind, _))) in cells.iter().zip(&kinds).enumerate() {
            files.push((format!("cell_{i}.svg"), plot::cell_svg(cell, *kind, &titles[i]).into_bytes()));
        }
        Ok(Derived {
            name,
            genotype: Derivation {
                space: Self::NAME,
                genotype,
                stage_cells: stages.iter().map(|&i| cell_name(i)).collect(),
                cells: per_cell,
                allow_none: derive.allow_none,
            },
            result: Findings { other_derivation: OtherDerivation { allow_none: !derive.allow_none, arch: other } },
            report,
            details_md: details,
            files,
        })
    }

    /// NetworkCIFAR C=36 with 20 cells, 600 epochs, batch 96, SGD 0.025 cosine to 0, weight decay 3e-4, clip 5,
    /// cutout 16, auxiliary head 0.4, drop-path 0.2.
    fn retrain_preset(preset: Preset) -> RetrainConfig<Self> {
        let train = TrainConfig {
            epochs: 600,
            batch_size: 96,
            lr_min: 0.0,
            augment: Augment { crop_padding: 4, hflip: true, cutout: 16, ..Augment::none() },
            checkpoint_every: 500,
            ..TrainConfig::default()
        };
        let scaled = RetrainConfig::scaled(RetrainConfig::base(NetworkConfig::default(), train), preset);
        let network = match preset {
            Preset::Paper => scaled.network,
            Preset::Embedded => NetworkConfig { channels: 16, layers: 8, ..scaled.network },
            Preset::Smoke => NetworkConfig { channels: 4, layers: 5, ..scaled.network },
        };
        RetrainConfig { genotype: "agnas".into(), network, ..scaled }
    }

    fn build_network(
        cfg: &NetworkConfig,
        genotype: &Genotype,
        p: &nn::Path,
        in_channels: i64,
        num_classes: i64,
    ) -> Box<dyn EvalNetwork> {
        Box::new(DartsEval { net: NetworkCifar::new(p, cfg, genotype, in_channels, num_classes), cfg: cfg.clone() })
    }

    /// Without the auxiliary head, which only trains.
    fn counts_param(name: &str) -> bool {
        !name.starts_with("auxiliary_head")
    }

    /// One decision per node of the cells the evaluation network takes its genotypes from.
    fn decider(cfg: &DartsConfig, derive: &DartsDerive) -> Result<Decider> {
        let (stages, steps, allow_none) = (cfg.stage_cells(), cfg.steps, derive.allow_none);
        Ok(Box::new(move |importances: &Importances| {
            let values = importances.to_vec3()?;
            let mut decisions = Vec::new();
            for &i in &stages {
                let cell = values.get(i).with_context(|| format!("importances lack {}", cell_name(i)))?;
                decisions.extend(
                    derive::cell_decisions(cell, steps, allow_none, &cell_name(i)).with_context(|| cell_name(i))?,
                );
            }
            Ok(decisions)
        }))
    }

    /// Choices of the stage cells' nodes in order, each `op~input,op~input`.
    fn from_choices(cfg: &DartsConfig, choices: &[&str]) -> Result<Genotype> {
        let stages = cfg.stage_cells().len();
        crate::error::ensure!(
            choices.len() == stages * cfg.steps,
            "{} choices for {stages} cells of {} nodes",
            choices.len(),
            cfg.steps
        );
        let pair = |text: &str| -> Result<(DartsOp, usize)> {
            let (op, input) = text.split_once('~').with_context(|| format!("`{text}` is not `op~input`"))?;
            Ok((op.parse()?, input.parse().with_context(|| format!("the input of `{text}`"))?))
        };
        let cells = choices
            .chunks(cfg.steps)
            .map(|nodes| {
                let ops = nodes.iter().flat_map(|n| n.split(',')).map(pair).collect::<Result<_>>()?;
                Ok(CellGenotype { ops, concat: (2..cfg.steps + 2).collect() })
            })
            .collect::<Result<_>>()?;
        let genotype = Genotype::Stages { cells };
        genotype.validate()?;
        Ok(genotype)
    }

    fn random_genotype(cfg: &DartsConfig, derive: &DartsDerive, rng: &mut dyn rand::RngCore) -> Genotype {
        Genotype::random_from(rng, cfg.steps, derive.allow_none)
    }

    /// Released checkpoints keep the auxiliary head's weights; the network then gets the head too (unused in eval).
    fn fit_to_weights(network: &mut NetworkConfig, names: &[&str]) {
        network.auxiliary = names.iter().any(|n| n.contains("auxiliary_head."));
    }

    fn importance_svg(described: &serde_json::Value, title: &str, notes: &[String]) -> Result<String> {
        let values: Vec<Vec<Vec<f64>>> = serde_json::from_value(described["values"].clone())?;
        /// A cell as `describe` labels it.
        #[derive(Deserialize)]
        struct Cell {
            name: String,
            kind: CellKind,
            channels: i64,
        }
        let cells: Vec<Cell> = serde_json::from_value(described["cells"].clone())?;
        let titles: Vec<String> =
            cells.iter().map(|c| format!("{} ({:?}, C={})", c.name, c.kind, c.channels)).collect();
        let ops: Vec<String> = serde_json::from_value(described["ops"].clone())?;
        let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
        // A cell of s steps has s(s+3)/2 edges.
        let edges = values.first().map_or(0, Vec::len);
        let steps = (((8 * edges + 9) as f64).sqrt() as usize).saturating_sub(3) / 2;
        Ok(importance_heatmap_svg(&values, &titles, &node_edge_labels(steps), &ops, title, notes))
    }

    fn bench_blocks(p: &nn::Path, c: i64, b: i64) -> Vec<BenchBlock> {
        let x = vec![b, c, 32, 32];
        let pool = |kind, stride| Pool { kind, stride };
        let cfg = DartsConfig { channels: c, ..Default::default() };
        let pool_bn = |kind, name: &str| {
            let bn = crate::nn::init::batch_norm2d(p / name / "1", c, false);
            move |xs: &[Tensor]| pool(kind, 1).forward_t(&xs[0], true).apply_t(&bn, true)
        };
        let edge = supernet::mixed_op(p / "mixed_op", c, 1, cfg.attention_ratio);
        let edge_s2 = supernet::mixed_op(p / "mixed_op_s2", c, 2, cfg.attention_ratio);
        let c_in = cfg.stem_multiplier * c;
        let cell = supernet::SearchCell::new(p / "cell", &cfg, c_in, c_in, c, CellKind::Normal, false);
        vec![
            BenchBlock::after_relu("sep_conv_3x3", x.clone(), SepConv::new(p / "s3", c, c, 3, 1, false)),
            BenchBlock::after_relu("sep_conv_5x5", x.clone(), SepConv::new(p / "s5", c, c, 5, 1, false)),
            BenchBlock::after_relu("dil_conv_3x3", x.clone(), DilConv::new(p / "d3", c, c, 3, 1, 2, false)),
            BenchBlock::after_relu("dil_conv_5x5", x.clone(), DilConv::new(p / "d5", c, c, 5, 1, 2, false)),
            BenchBlock::new("max_pool_3x3_bn", vec![x.clone()], pool_bn(PoolKind::Max, "max")),
            BenchBlock::new("avg_pool_3x3_bn", vec![x.clone()], pool_bn(PoolKind::Avg, "avg")),
            BenchBlock::after_relu("factorized_reduce", x.clone(), FactorizedReduce::new(p / "fr", c, c, false)),
            BenchBlock::new("mixed_op", vec![x.clone()], move |xs| {
                edge.forward_t(&Node::new(xs[0].shallow_clone()), true).out
            }),
            BenchBlock::new("mixed_op_s2", vec![x], move |xs| {
                edge_s2.forward_t(&Node::new(xs[0].shallow_clone()), true).out
            }),
            BenchBlock::new("cell", vec![vec![b, c_in, 32, 32]; 2], move |xs| cell.forward_t(&xs[0], &xs[1], true).0),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_free_share_counts_the_ops_of_every_cell() {
        // DARTS V1 (Liu et al.): three skips in the normal cell, a reduce cell of pools and skips only.
        assert_eq!(Genotype::builtin("darts_v1").unwrap().parameter_free_share(), 11.0 / 16.0);
    }
}
