//! NAS-Bench-201: 6-edge cell, 5 ops, one genotype shared by all 15 cells; results looked up in the benchmark.
pub mod arch;
pub mod bench;
pub mod derive;
pub mod network;
mod skeleton;
pub mod supernet;

pub use arch::{Arch, Nb201Op, EDGES};
pub use derive::{Aggregation, DeriveConfig};
pub use network::{Nb201Network, Nb201NetworkConfig};
pub use supernet::{Combine, Nb201Config, Nb201Supernet};

use super::{
    BenchBlock, Benchmark, BenchmarkTable, Decider, Derived, EvalNetwork, GenotypeFormat, Importances, Section, Space,
    SpaceSections, Supernet, SupernetOutput,
};
use crate::config::settings::{named_kind, Kind, Setting, ATTENTION_RATIO};
use crate::config::{Preset, RetrainConfig, SearchConfig};
use crate::data::augment::Augment;
use crate::data::DataConfig;
use crate::error::{Context, Result};
use crate::nn::layers::ConvSpec;
use crate::nn::ops::{Pool, PoolKind, ReLUConvBN};
use crate::nn::{Node, SeAttention};
use crate::report::cell::{cell_svg, CellPicture, PictureEdge};
use crate::report::heatmap::importance_heatmap_svg;
use crate::train::TrainConfig;
use serde::Serialize;
use tch::{nn, Tensor};

/// The NAS-Bench-201 space.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Nb201;

const AXES: [&str; 3] = ["cell", "edge", "op"];

impl Supernet for Nb201Supernet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> SupernetOutput {
        Nb201Supernet::forward_t(self, xs, train)
    }
}

impl EvalNetwork for Nb201Network {
    fn logits(&self, xs: &Tensor) -> Tensor {
        self.forward_t(xs, false)
    }

    fn training_logits(&self, xs: &Tensor) -> Tensor {
        self.forward_t(xs, true)
    }
}

impl Section for Nb201Config {
    fn validate(&self) -> Result<()> {
        Nb201Config::validate(self)
    }
}

impl Section for DeriveConfig {
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

impl Section for Nb201NetworkConfig {
    fn validate(&self) -> Result<()> {
        Nb201NetworkConfig::validate(self)
    }
}

/// Each edge's scores as shares of the edge's total, the chosen op in bold.
fn scores_table(scores: &[Vec<f64>], arch: &Arch) -> String {
    let mut s = String::from("Held-out attention per edge (share of the edge's total, %):\n\n| edge |");
    for op in Nb201Op::ALL {
        s.push_str(&format!(" {op} |"));
    }
    s.push_str(&format!("\n|---|{}\n", "---:|".repeat(Nb201Op::ALL.len())));
    for (((to, from), row), chosen) in EDGES.iter().zip(scores).zip(arch.ops) {
        let total: f64 = row.iter().sum();
        s.push_str(&format!("| {to}<-{from} |"));
        for (op, v) in Nb201Op::ALL.iter().zip(row) {
            let share = 100.0 * v / total;
            s.push_str(&if *op == chosen { format!(" **{share:.2}** |") } else { format!(" {share:.2} |") });
        }
        s.push('\n');
    }
    s
}

/// A genotype from a benchmark index, an arch string, or a JSON file holding one under `arch` (a search's
/// `genotype.json`) or as a string.
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
    Ok(bench::query(spec).map(|r| r.arch)?)
}

impl SpaceSections for Nb201 {
    const NAME: &'static str = "nb201";
    const SETTINGS: &'static [Setting] = &[
        Setting::new(
            "supernet.channels",
            "channels",
            Kind::Int,
            "Channels C of the first stage (doubled at each reduction).",
        )
        .shape(),
        Setting::new("supernet.cells_per_stage", "cells-per-stage", Kind::Int, "Search cells per stage N.").shape(),
        ATTENTION_RATIO,
        Setting::new(
            "supernet.combine",
            "combine",
            named_kind::<Combine>(),
            "How an edge combines its gated candidates: sum or mean (Σ/K, which keeps a deep stack's scale).",
        ),
        Setting::new(
            "derive.aggregation",
            "aggregation",
            named_kind::<Aggregation>(),
            "How the cells' importances combine: all-cells or first-stage.",
        ),
        Setting::new(
            "derive.allow_none",
            "allow-none",
            Kind::Switch(true),
            "Let `none` win an edge: off by default, since no gradient reaches a zero output's gates.",
        ),
        Setting::new(
            "network.channels",
            "channels",
            Kind::Int,
            "Channels C of the first stage (doubled at each reduction).",
        )
        .shape(),
        Setting::new("network.cells_per_stage", "cells-per-stage", Kind::Int, "Cells per stage N.").shape(),
    ];
    type Supernet = Nb201Config;
    type Derive = DeriveConfig;
    type Network = Nb201NetworkConfig;
}

/// `genotype.json` of a search: the cell, and the edge scores and rule it was picked by.
#[derive(Debug, Serialize)]
pub struct Derivation {
    space: &'static str,
    arch: String,
    /// `[edge][op]`, summed over the cells `aggregation` selects.
    edge_scores: Vec<Vec<f64>>,
    aggregation: Aggregation,
    allow_none: bool,
}

/// What a search adds to `result.json`: the benchmark's record of its cell, and the cell the other `none` rule
/// gives from the same importances (one search measures the choice).
#[derive(Debug, Serialize)]
pub struct Findings {
    bench201: Option<&'static bench::Record>,
    other_derivation: OtherDerivation,
}

#[derive(Debug, Serialize)]
pub struct OtherDerivation {
    allow_none: bool,
    arch: String,
    bench201: Option<&'static bench::Record>,
}

/// The NAS-Bench-201 table embedded in agnas, as the space's benchmark.
struct Bench201;

impl BenchmarkTable<Arch> for Bench201 {
    fn about(&self) -> Benchmark {
        Benchmark {
            key: "bench201",
            headline: &["c10_test", "c100_test", "in16_test"],
            described: "NAS-Bench-201 CIFAR-10 test accuracy",
        }
    }

    fn record(&self, genotype: &Arch) -> Option<serde_json::Value> {
        bench::table().by_arch(genotype).and_then(|r| serde_json::to_value(r).ok())
    }
}

impl GenotypeFormat for Arch {
    fn parse(spec: &str) -> Result<Self> {
        parse_arch(spec)
    }

    fn validate(&self) -> Result<()> {
        // An `Arch` is valid by construction: parsing checked it.
        Ok(())
    }

    fn text(&self) -> String {
        format!("{self}\n")
    }

    /// The cell: input node 0, nodes 1–3, one arrow per edge (`none` in light grey); node 3 is the output.
    fn pictures(&self, title: &str) -> Vec<(String, String)> {
        let edges = EDGES
            .iter()
            .zip(self.ops)
            .map(|(&(to, from), op)| PictureEdge {
                from,
                to,
                label: op.name().to_string(),
                faint: op == Nb201Op::None,
                thick: false,
            })
            .collect();
        let picture = CellPicture {
            title: title.to_string(),
            subtitle: None,
            inputs: vec!["0".into()],
            nodes: (1..4).map(|j: usize| j.to_string()).collect(),
            edges,
            output: "out".into(),
            concat: vec![3],
        };
        vec![("cell.svg".into(), cell_svg(&picture))]
    }

    fn parameter_free_share(&self) -> f64 {
        self.ops.iter().filter(|op| op.parameter_free()).count() as f64 / self.ops.len() as f64
    }
}

impl Space for Nb201 {
    type Genotype = Arch;
    type Derivation = Derivation;
    type Findings = Findings;

    fn search_preset(preset: Preset) -> SearchConfig<Self> {
        let base = SearchConfig::<Self>::preset_base(preset);
        match preset {
            // The paper's depth needs the mean (`Combine`).
            Preset::Paper => SearchConfig { supernet: Nb201Config { combine: Combine::Mean, ..base.supernet }, ..base },
            // Wide and shallow learns far faster in a short budget than narrow and deep at the same step time
            // (C=16, N=1: 53 % supernet accuracy after 10 epochs; C=8, N=2: 24 %).
            Preset::Embedded => SearchConfig {
                data: DataConfig { per_class: 1000, ..base.data },
                train: TrainConfig { epochs: 10, ..base.train },
                supernet: Nb201Config { channels: 16, cells_per_stage: 1, ..base.supernet },
                ..base
            },
            Preset::Smoke => {
                SearchConfig { supernet: Nb201Config { channels: 4, cells_per_stage: 1, ..base.supernet }, ..base }
            }
        }
    }

    fn build_supernet(cfg: &Nb201Config, p: &nn::Path, in_channels: i64, num_classes: i64) -> Box<dyn Supernet> {
        Box::new(Nb201Supernet::new(p, cfg, in_channels, num_classes))
    }

    fn importances(_: &Nb201Config, importance: &Tensor) -> Result<Importances> {
        Importances::from_tensor(&AXES, importance)
    }

    fn describe(cfg: &Nb201Config, importances: &Importances) -> serde_json::Value {
        let edges: Vec<String> = EDGES.iter().map(|(to, from)| format!("{to}<-{from}")).collect();
        let ops: Vec<&str> = Nb201Op::ALL.iter().map(|o| o.name()).collect();
        serde_json::json!({
            "axes": AXES,
            "cell_channels": cfg.search_cell_channels(),
            "edges": edges,
            "ops": ops,
            "values": importances.nested(),
        })
    }

    fn derive(
        cfg: &Nb201Config,
        derive: &DeriveConfig,
        importances: &Importances,
    ) -> Result<Derived<Derivation, Findings>> {
        let channels = cfg.search_cell_channels();
        let values = importances.to_vec3()?;
        let scores = derive::edge_scores(&values, &channels, derive)?;
        let arch = derive::pick(&scores, derive.allow_none)?;
        let record = bench::table().by_arch(&arch);
        // The same importances with `none` allowed or not: one search measures the choice (issue 13).
        let other_allows_none = !derive.allow_none;
        let other = derive::pick(&scores, other_allows_none)?;
        let other_record = bench::table().by_arch(&other);
        let mut report: Vec<String> = record
            .map(|r| {
                format!(
                    "NAS-Bench-201 (200 epochs): CIFAR-10 test {:.2} %, CIFAR-100 test {:.2} %, ImageNet16-120 test \
                     {:.2} %",
                    r.c10_test, r.c100_test, r.in16_test
                )
            })
            .into_iter()
            .collect();
        if other != arch {
            let accuracy = other_record.map(|r| format!(" (CIFAR-10 test {:.2} %)", r.c10_test)).unwrap_or_default();
            let with = if other_allows_none { "with `none` allowed" } else { "without `none`" };
            report.push(format!("{with} the same importances give {other}{accuracy}"));
        }
        let mut details = String::new();
        if let Some(r) = record {
            details.push_str("| NAS-Bench-201 (200 epochs) | accuracy % |\n|---|---|\n");
            for (key, v) in [("c10_test", r.c10_test), ("c10v_valid", r.c10v_valid), ("c100_test", r.c100_test)]
                .into_iter()
                .chain([("in16_test", r.in16_test)])
            {
                details.push_str(&format!("| {key} | {v:.2} |\n"));
            }
            details.push('\n');
        }
        details.push_str(&scores_table(&scores, &arch));
        Ok(Derived {
            name: arch.to_string(),
            genotype: Derivation {
                space: Self::NAME,
                arch: arch.to_string(),
                edge_scores: scores,
                aggregation: derive.aggregation,
                allow_none: derive.allow_none,
            },
            result: Findings {
                bench201: record,
                other_derivation: OtherDerivation {
                    allow_none: other_allows_none,
                    arch: other.to_string(),
                    bench201: other_record,
                },
            },
            report,
            details_md: details,
            files: arch.pictures("found cell").into_iter().map(|(name, svg)| (name, svg.into_bytes())).collect(),
        })
    }

    fn decider(cfg: &Nb201Config, derive: &DeriveConfig) -> Result<Decider> {
        let (channels, derive) = (cfg.search_cell_channels(), *derive);
        Ok(Box::new(move |importances: &Importances| {
            let scores = derive::edge_scores(&importances.to_vec3()?, &channels, &derive)?;
            derive::decisions(&scores, derive.allow_none)
        }))
    }

    fn from_choices(_: &Nb201Config, choices: &[&str]) -> Result<Arch> {
        crate::error::ensure!(
            choices.len() == EDGES.len(),
            "{} choices for the {} edges of a cell",
            choices.len(),
            EDGES.len()
        );
        let mut ops = [Nb201Op::None; 6];
        for (slot, choice) in ops.iter_mut().zip(choices) {
            *slot = choice.parse()?;
        }
        Ok(Arch { ops })
    }

    fn random_genotype(_: &Nb201Config, derive: &DeriveConfig, rng: &mut dyn rand::RngCore) -> Arch {
        use rand::Rng;
        let first = usize::from(!derive.allow_none);
        Arch { ops: std::array::from_fn(|_| Nb201Op::ALL[rng.gen_range(first..Nb201Op::ALL.len())]) }
    }

    fn benchmark() -> Option<&'static dyn BenchmarkTable<Arch>> {
        Some(&Bench201)
    }

    /// The benchmark's recipe: 200 epochs, batch 256, SGD lr 0.1 Nesterov momentum 0.9, weight decay 5e-4, cosine to
    /// 0, random crop and flip, no clipping.
    fn retrain_preset(preset: Preset) -> RetrainConfig<Self> {
        let train = TrainConfig {
            epochs: 200,
            batch_size: 256,
            lr: 0.1,
            lr_min: 0.0,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: true,
            grad_clip: 0.0,
            augment: Augment { crop_padding: 4, hflip: true, cutout: 0, ..Augment::none() },
            checkpoint_every: 500,
            ..TrainConfig::default()
        };
        let paper = RetrainConfig::base(Nb201NetworkConfig::default(), train);
        let scaled = RetrainConfig::scaled(paper, preset);
        let network = match preset {
            Preset::Paper => scaled.network,
            Preset::Embedded => Nb201NetworkConfig { channels: 16, cells_per_stage: 2 },
            Preset::Smoke => Nb201NetworkConfig { channels: 4, cells_per_stage: 1 },
        };
        RetrainConfig { network, ..scaled }
    }

    fn build_network(
        cfg: &Nb201NetworkConfig,
        genotype: &Arch,
        p: &nn::Path,
        in_channels: i64,
        num_classes: i64,
    ) -> Box<dyn EvalNetwork> {
        Box::new(Nb201Network::new(p, cfg, genotype, in_channels, num_classes))
    }

    fn importance_svg(described: &serde_json::Value, title: &str, notes: &[String]) -> Result<String> {
        let values: Vec<Vec<Vec<f64>>> = serde_json::from_value(described["values"].clone())?;
        let channels: Vec<i64> = serde_json::from_value(described["cell_channels"].clone())?;
        let titles: Vec<String> = channels.iter().enumerate().map(|(i, c)| format!("cell {i} (C={c})")).collect();
        let edges: Vec<String> = EDGES.iter().map(|(to, from)| format!("{to}←{from}")).collect();
        let ops: Vec<&str> = Nb201Op::ALL.iter().map(|o| o.name()).collect();
        Ok(importance_heatmap_svg(&values, &titles, &edges, &ops, title, notes))
    }

    fn bench_blocks(p: &nn::Path, c: i64, b: i64) -> Vec<BenchBlock> {
        let x = vec![b, c, 32, 32];
        let conv = |k: i64, spec: ConvSpec, name: &str| ReLUConvBN::new(p / name, c, c, k, spec, false);
        let cfg = Nb201Config { channels: c, ..Default::default() };
        let se = SeAttention::new(p / "se", 5 * c, cfg.attention_ratio);
        let edge = supernet::mixed_op(p / "mixed_op", c, &cfg);
        let cell = supernet::SearchCell::new(p / "cell", c, &cfg);
        vec![
            BenchBlock::after_relu("relu_conv_bn_1x1", x.clone(), conv(1, ConvSpec::default(), "c1")),
            BenchBlock::after_relu("relu_conv_bn_3x3", x.clone(), conv(3, ConvSpec::default().padding(1), "c3")),
            BenchBlock::module("avg_pool_3x3", x.clone(), Pool { kind: PoolKind::Avg, stride: 1 }),
            BenchBlock::new("se_attention", vec![vec![b, 5 * c]], move |xs| se.excite(&xs[0])),
            BenchBlock::new("mixed_op", vec![x.clone()], move |xs| {
                edge.forward_t(&Node::new(xs[0].shallow_clone()), true).out
            }),
            BenchBlock::new("cell", vec![x], move |xs| cell.forward_t(&xs[0], true).0),
        ]
    }
}
