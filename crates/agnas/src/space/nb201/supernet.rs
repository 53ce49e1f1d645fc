//! The NAS-Bench-201 supernet with one AGNAS attention module per edge (spec §2.2).
//!
//! Stem → N search cells (C) → ResNet reduction → N cells (2C) → reduction → N cells (4C) → BN-ReLU → GAP → FC.
//! All search cells have their own weights and attention; the genotype is shared (see `derive`).
use super::arch::{Nb201Op, EDGES};
use super::skeleton::Skeleton;
use crate::nn::layers::ConvSpec;
use crate::nn::ops::{Pool, PoolKind, ReLUConvBN};
use crate::nn::{Candidate, MixedOp, Node, Shared};
use crate::space::SupernetOutput;
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

/// Shape of the NB201 supernet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Nb201Config {
    /// Channels of the first stage (doubled at each reduction).
    pub channels: i64,
    /// Search cells per stage.
    pub cells_per_stage: i64,
    /// SE reduction ratio: the hidden width of an edge's attention is ⌊5C / ratio⌋.
    pub attention_ratio: i64,
    /// BN in the candidate ops learns an affine transform (the DARTS convention for supernets is not to).
    pub affine: bool,
    /// How an edge combines its gated candidates; runs from before the setting existed summed.
    #[serde(default)]
    pub combine: Combine,
}

/// How an edge combines its gated candidates.
///
/// NB201's cells have no preprocessing: a node adds its edges and a cell passes its last node on, so the part of
/// the signal that skips and pools carry is scaled by the cell (about 4× with sigmoid gates near ½, summed) and
/// compounds over the stack and the reductions' shortcuts (10⁷ at N = 5 at initialisation), while every
/// convolution adds a batch-normalised, unit-scale term: the deep supernet's convolutions barely reach the logits.
/// The mean keeps an edge's output at the scale of one candidate, as the convex mixtures of the DARTS family do on
/// this skeleton. The paper preset (N = 5) takes it because the supernet it trains holds out far better there
/// (BENCHMARKS.md, issue 35: 35.0 % held-out accuracy after 4 epochs against 20.2 %); at N = 1 the scale stays
/// within 5× and the evidence is mixed, so the shallow presets keep the paper's sum. The gates, and so the
/// importances' meaning, are the same.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "kebab-case")]
pub enum Combine {
    /// Σₖ gₖ ⊙ yₖ, as the official code's DARTS and ProxylessNAS spaces do.
    #[default]
    Sum,
    /// Σₖ gₖ ⊙ yₖ / K.
    Mean,
}

impl Default for Nb201Config {
    fn default() -> Self {
        Nb201Config { channels: 16, cells_per_stage: 5, attention_ratio: 8, affine: false, combine: Combine::Sum }
    }
}

impl Nb201Config {
    /// Rejects impossible shapes, naming the field.
    pub fn validate(&self) -> crate::Result<()> {
        crate::error::ensure!(self.channels >= 2, "supernet.channels must be at least 2 (got {})", self.channels);
        crate::error::ensure!(
            self.cells_per_stage >= 1,
            "supernet.cells_per_stage must be at least 1 (got {})",
            self.cells_per_stage
        );
        crate::error::ensure!(
            self.attention_ratio >= 1 && self.attention_ratio <= 5 * self.channels,
            "supernet.attention_ratio must be in 1..={} (got {})",
            5 * self.channels,
            self.attention_ratio
        );
        Ok(())
    }

    /// Channels of each search cell, in forward order (needed to weigh importances across stages).
    pub fn search_cell_channels(&self) -> Vec<i64> {
        (0..3).flat_map(|stage| std::iter::repeat_n(self.channels << stage, self.cells_per_stage as usize)).collect()
    }
}

/// One NB201 cell: node j (1..3) sums its incoming edges, each a [`MixedOp`] over the five NB201 ops.
#[derive(Debug)]
pub struct SearchCell {
    edges: Vec<MixedOp>,
}

/// The decision point of one NB201 edge: the five ops under `p/_ops/<k>`, one SE module over their outputs.
pub fn mixed_op(p: nn::Path, c: i64, cfg: &Nb201Config) -> MixedOp {
    let ops = &p / "_ops";
    let candidates = Nb201Op::ALL
        .iter()
        .enumerate()
        .map(|(k, op)| {
            let conv = |k_size: i64, spec: ConvSpec| {
                Candidate::OnRelu(Box::new(ReLUConvBN::new(&ops / k, c, c, k_size, spec, cfg.affine)))
            };
            match op {
                Nb201Op::None => Candidate::Zero,
                Nb201Op::SkipConnect => Candidate::Shared(Shared::Identity),
                Nb201Op::NorConv1x1 => conv(1, ConvSpec::default()),
                Nb201Op::NorConv3x3 => conv(3, ConvSpec::default().padding(1)),
                Nb201Op::AvgPool3x3 => Candidate::Shared(Shared::Pool(Pool { kind: PoolKind::Avg, stride: 1 })),
            }
        })
        .collect();
    let op = MixedOp::new(p, candidates, c, cfg.attention_ratio);
    match cfg.combine {
        Combine::Sum => op,
        Combine::Mean => op.averaged(),
    }
}

impl SearchCell {
    pub fn new(p: nn::Path, c: i64, cfg: &Nb201Config) -> Self {
        SearchCell { edges: (0..EDGES.len()).map(|e| mixed_op(&p / "edges" / e, c, cfg)).collect() }
    }

    /// Returns the cell output and the (6, 5) importances of this forward.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut nodes = vec![Node::new(xs.shallow_clone())];
        let mut importances = Vec::with_capacity(EDGES.len());
        for to in 1..4 {
            let mut sum = None;
            for (e, &(t, from)) in EDGES.iter().enumerate() {
                if t == to {
                    importances.push(self.edges[e].accumulate(&nodes[from], &mut sum, train));
                }
            }
            nodes.push(Node::new(sum.expect("every NB201 node has an incoming edge")));
        }
        (nodes.pop().expect("node 3").into_value(), Tensor::stack(&importances, 0))
    }
}

/// The supernet; parameter names follow the PyTorch reference in `tools/agnas_ref.py`.
#[derive(Debug)]
pub struct Nb201Supernet(Skeleton<SearchCell>);

impl Nb201Supernet {
    pub fn new(p: &nn::Path, cfg: &Nb201Config, in_channels: i64, num_classes: i64) -> Self {
        let cell = |p: nn::Path, c: i64| SearchCell::new(p, c, cfg);
        Nb201Supernet(Skeleton::new(p, cfg.channels, cfg.cells_per_stage, in_channels, num_classes, cell))
    }

    /// Logits and the importances of this forward, shape (search cells, 6 edges, 5 ops).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> SupernetOutput {
        let mut importances = Vec::new();
        let logits = self.0.forward_t(xs, train, |cell, h| {
            let (out, imp) = cell.forward_t(h, train);
            importances.push(imp);
            out
        });
        SupernetOutput { logits, importance: Tensor::stack(&importances, 0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration written before `combine` existed ran the sum and resumes with it.
    #[test]
    fn runs_from_before_the_setting_keep_the_sum() {
        let old: Nb201Config =
            toml::from_str("channels = 16\ncells_per_stage = 5\nattention_ratio = 8\naffine = false\n").unwrap();
        assert_eq!(old.combine, Combine::Sum);
    }
}
