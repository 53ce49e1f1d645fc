//! The DARTS-space supernet with one AGNAS attention module per edge (spec §2.1, §1.2).
//!
//! Stem → `layers` cells (reductions at ⌊layers/3⌋ and ⌊2·layers/3⌋, where C doubles) → GAP → FC. Every cell has
//! its own 14 mixed edges and attention modules, so the search yields one genotype per cell.
use super::genotype::{CellKind, DartsOp};
use crate::nn::init::{batch_norm2d, conv2d, linear};
use crate::nn::layers::ConvSpec;
use crate::nn::layers::{Conv2d, Linear};
use crate::nn::ops::{DilConv, FactorizedReduce, Pool, PoolKind, ReLUConvBN, SepConv};
use crate::nn::{Candidate, Layer, MixedOp, Node, Shared};
use crate::space::SupernetOutput;
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Shape of the DARTS supernet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DartsConfig {
    /// Channels of the first cells (doubled at each reduction).
    pub channels: i64,
    /// Cells in the supernet.
    pub layers: usize,
    /// Intermediate nodes per cell; all of them are concatenated into the cell output.
    pub steps: usize,
    /// The stem has `stem_multiplier · channels` channels.
    pub stem_multiplier: i64,
    /// SE reduction ratio: the hidden width of an edge's attention is ⌊8C / ratio⌋.
    pub attention_ratio: i64,
}

impl Default for DartsConfig {
    fn default() -> Self {
        DartsConfig { channels: 16, layers: 8, steps: 4, stem_multiplier: 3, attention_ratio: 8 }
    }
}

impl DartsConfig {
    /// Rejects impossible shapes, naming the field.
    pub fn validate(&self) -> crate::Result<()> {
        use crate::error::ensure;
        ensure!(
            self.channels >= 2 && self.channels % 2 == 0,
            "supernet.channels must be even and >= 2 (got {})",
            self.channels
        );
        ensure!(
            self.layers >= 5,
            "supernet.layers must be at least 5, so that every stage slot has its own cell (got {})",
            self.layers
        );
        ensure!(self.steps >= 1, "supernet.steps must be at least 1");
        ensure!(self.stem_multiplier >= 1, "supernet.stem_multiplier must be at least 1");
        ensure!(
            self.attention_ratio >= 1 && self.attention_ratio <= 8 * self.channels,
            "supernet.attention_ratio must be in 1..={} (got {})",
            8 * self.channels,
            self.attention_ratio
        );
        Ok(())
    }

    /// Mixed edges per cell: node i reads the two cell inputs and the i earlier nodes.
    pub fn edges_per_cell(&self) -> usize {
        (0..self.steps).map(|i| i + 2).sum()
    }

    /// Kind and channel count C of every cell, in forward order.
    pub fn cells(&self) -> Vec<(CellKind, i64)> {
        let mut c = self.channels;
        (0..self.layers)
            .map(|i| {
                let kind = CellKind::of(i, self.layers);
                if kind == CellKind::Reduce {
                    c *= 2;
                }
                (kind, c)
            })
            .collect()
    }
}

/// The decision point of one edge: the eight ops under `p/_ops/<k>` (BN without affine), one SE module.
///
/// Each pool is followed by a BN without affine parameters of its own, so that pool outputs are on the
/// convolutions' scale (`Sequential(pool, BatchNorm2d(C, affine=False))`, BN at index 1).
pub fn mixed_op(p: nn::Path, c: i64, stride: i64, ratio: i64) -> MixedOp {
    let ops = &p / "_ops";
    let candidates = DartsOp::ALL
        .iter()
        .enumerate()
        .map(|(k, &o)| match o {
            DartsOp::None => Candidate::Zero,
            DartsOp::AvgPool3x3 | DartsOp::MaxPool3x3 => {
                let kind = if o == DartsOp::AvgPool3x3 { PoolKind::Avg } else { PoolKind::Max };
                let bn = batch_norm2d(&ops / k / "1", c, false);
                Candidate::OnShared(Shared::Pool(Pool { kind, stride }), Box::new(bn))
            }
            DartsOp::SkipConnect if stride == 1 => Candidate::Shared(Shared::Identity),
            DartsOp::SkipConnect => Candidate::OnRelu(Box::new(FactorizedReduce::new(&ops / k, c, c, false))),
            DartsOp::SepConv3x3 | DartsOp::SepConv5x5 => {
                let k_size = if o == DartsOp::SepConv3x3 { 3 } else { 5 };
                Candidate::OnRelu(Box::new(SepConv::new(&ops / k, c, c, k_size, stride, false)))
            }
            DartsOp::DilConv3x3 | DartsOp::DilConv5x5 => {
                let k_size = if o == DartsOp::DilConv3x3 { 3 } else { 5 };
                Candidate::OnRelu(Box::new(DilConv::new(&ops / k, c, c, k_size, stride, 2, false)))
            }
        })
        .collect();
    MixedOp::new(p, candidates, c, ratio)
}

/// The input preprocessing shared by search and evaluation cells: c_{k-2} is halved when the previous cell reduced.
pub(super) fn preprocess(
    p: &nn::Path,
    c_pp: i64,
    c_p: i64,
    c: i64,
    reduction_prev: bool,
    affine: bool,
) -> (Box<dyn Layer>, ReLUConvBN) {
    let pre0: Box<dyn Layer> = if reduction_prev {
        Box::new(FactorizedReduce::new(p / "preprocess0", c_pp, c, affine))
    } else {
        Box::new(ReLUConvBN::new(p / "preprocess0", c_pp, c, 1, ConvSpec::default(), affine))
    };
    (pre0, ReLUConvBN::new(p / "preprocess1", c_p, c, 1, ConvSpec::default(), affine))
}

#[derive(Debug)]
pub struct SearchCell {
    preprocess0: Box<dyn Layer>,
    preprocess1: ReLUConvBN,
    edges: Vec<MixedOp>,
    steps: usize,
}

impl SearchCell {
    pub fn new(
        p: nn::Path,
        cfg: &DartsConfig,
        c_pp: i64,
        c_p: i64,
        c: i64,
        kind: CellKind,
        reduction_prev: bool,
    ) -> Self {
        let (preprocess0, preprocess1) = preprocess(&p, c_pp, c_p, c, reduction_prev, false);
        let mut edges = Vec::with_capacity(cfg.edges_per_cell());
        for i in 0..cfg.steps {
            for j in 0..i + 2 {
                let stride = if kind == CellKind::Reduce && j < 2 { 2 } else { 1 };
                edges.push(mixed_op(&p / "_ops" / edges.len(), c, stride, cfg.attention_ratio));
            }
        }
        SearchCell { preprocess0, preprocess1, edges, steps: cfg.steps }
    }

    /// The cell output and the (14, 8) importances of this forward, edges in `_ops` order.
    pub fn forward_t(&self, s0: &Tensor, s1: &Tensor, train: bool) -> (Tensor, Tensor) {
        let pre = [self.preprocess0.forward_t(s0, train), self.preprocess1.forward_t(s1, train)];
        let mut states: Vec<Node> = pre.into_iter().map(Node::new).collect();
        let mut importances = Vec::with_capacity(self.edges.len());
        let mut edges = self.edges.iter();
        for _ in 0..self.steps {
            let mut sum = None;
            for h in &states {
                let edge = edges.next().expect("one mixed op per (node, input)");
                importances.push(edge.accumulate(h, &mut sum, train));
            }
            states.push(Node::new(sum.expect("every node has inputs")));
        }
        let outputs: Vec<&Tensor> = states[states.len() - self.steps..].iter().map(Node::value).collect();
        let out = Tensor::cat(&outputs, 1);
        (out, Tensor::stack(&importances, 0))
    }
}

/// The supernet; parameter names are the official `model_search.Network`'s state_dict keys.
#[derive(Debug)]
pub struct DartsSupernet {
    stem_conv: Conv2d,
    stem_bn: nn::BatchNorm,
    cells: Vec<SearchCell>,
    classifier: Linear,
}

impl DartsSupernet {
    pub fn new(p: &nn::Path, cfg: &DartsConfig, in_channels: i64, num_classes: i64) -> Self {
        let stem = p / "stem";
        let c_stem = cfg.stem_multiplier * cfg.channels;
        let (mut c_pp, mut c_p) = (c_stem, c_stem);
        let mut reduction_prev = false;
        let mut cells = Vec::with_capacity(cfg.layers);
        for (i, (kind, c)) in cfg.cells().into_iter().enumerate() {
            cells.push(SearchCell::new(p / "cells" / i, cfg, c_pp, c_p, c, kind, reduction_prev));
            reduction_prev = kind == CellKind::Reduce;
            (c_pp, c_p) = (c_p, cfg.steps as i64 * c);
        }
        DartsSupernet {
            stem_conv: conv2d(&stem / "0", in_channels, c_stem, 3, ConvSpec::default().padding(1)),
            stem_bn: batch_norm2d(&stem / "1", c_stem, true),
            cells,
            classifier: linear(p / "classifier", c_p, num_classes, true),
        }
    }

    /// Logits and the importances of this forward, shape (cells, 14, 8).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> SupernetOutput {
        let stem = xs.apply(&self.stem_conv).apply_t(&self.stem_bn, train);
        let (mut s0, mut s1) = (stem.shallow_clone(), stem);
        let mut importances = Vec::with_capacity(self.cells.len());
        for cell in &self.cells {
            let (out, imp) = cell.forward_t(&s0, &s1, train);
            importances.push(imp);
            (s0, s1) = (s1, out);
        }
        let pooled = s1.mean_dim([2i64, 3].as_slice(), false, s1.kind());
        SupernetOutput { logits: pooled.apply(&self.classifier), importance: Tensor::stack(&importances, 0) }
    }
}
