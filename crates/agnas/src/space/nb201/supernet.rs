//! The NAS-Bench-201 supernet with one AGNAS attention module per edge (spec §2.2).
//!
//! Stem → N search cells (C) → ResNet reduction → N cells (2C) → reduction → N cells (4C) → BN-ReLU → GAP → FC.
//! All search cells have their own weights and attention; the genotype is shared (see `derive`).
use super::arch::{Nb201Op, EDGES};
use crate::nn::flops::{Conv2d, Linear};
use crate::nn::init::{batch_norm2d, conv2d, linear, ConvSpec};
use crate::nn::ops::{Pool, PoolKind, ReLUConvBN, ResNetBasicBlock};
use crate::nn::{Candidate, MixedOp, Node, Shared};
use crate::space::SupernetOutput;
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
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
}

impl Default for Nb201Config {
    fn default() -> Self {
        Nb201Config { channels: 16, cells_per_stage: 5, attention_ratio: 8, affine: false }
    }
}

impl Nb201Config {
    /// Rejects impossible shapes, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.channels >= 2, "supernet.channels must be at least 2 (got {})", self.channels);
        anyhow::ensure!(
            self.cells_per_stage >= 1,
            "supernet.cells_per_stage must be at least 1 (got {})",
            self.cells_per_stage
        );
        anyhow::ensure!(
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
    MixedOp::new(p, candidates, c, cfg.attention_ratio)
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

#[derive(Debug)]
enum Layer {
    Search(SearchCell),
    Reduction(Box<ResNetBasicBlock>),
}

/// The supernet; parameter names follow the PyTorch reference in `tools/agnas_ref.py`.
#[derive(Debug)]
pub struct Nb201Supernet {
    stem_conv: Conv2d,
    stem_bn: nn::BatchNorm,
    layers: Vec<Layer>,
    last_bn: nn::BatchNorm,
    classifier: Linear,
}

impl Nb201Supernet {
    pub fn new(p: &nn::Path, cfg: &Nb201Config, in_channels: i64, num_classes: i64) -> Self {
        let c = cfg.channels;
        let stem = p / "stem";
        let cells = p / "cells";
        let mut layers = Vec::new();
        let mut c_prev = c;
        for stage in 0..3 {
            let c_stage = c << stage;
            if stage > 0 {
                let block = ResNetBasicBlock::new(&cells / layers.len(), c_prev, c_stage, 2);
                layers.push(Layer::Reduction(Box::new(block)));
            }
            for _ in 0..cfg.cells_per_stage {
                layers.push(Layer::Search(SearchCell::new(&cells / layers.len(), c_stage, cfg)));
            }
            c_prev = c_stage;
        }
        Nb201Supernet {
            stem_conv: conv2d(&stem / "0", in_channels, c, 3, ConvSpec::default().padding(1)),
            stem_bn: batch_norm2d(&stem / "1", c, true),
            layers,
            last_bn: batch_norm2d(p / "lastact" / "0", c_prev, true),
            classifier: linear(p / "classifier", c_prev, num_classes, true),
        }
    }

    /// Logits and the importances of this forward, shape (search cells, 6 edges, 5 ops).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> SupernetOutput {
        let mut h = xs.apply(&self.stem_conv).apply_t(&self.stem_bn, train);
        let mut importances = Vec::new();
        for layer in &self.layers {
            h = match layer {
                Layer::Search(cell) => {
                    let (out, imp) = cell.forward_t(&h, train);
                    importances.push(imp);
                    out
                }
                Layer::Reduction(block) => block.forward_t(&h, train),
            };
        }
        let pooled = h.apply_t(&self.last_bn, train).relu().mean_dim([2i64, 3].as_slice(), false, h.kind());
        SupernetOutput { logits: pooled.apply(&self.classifier), importance: Tensor::stack(&importances, 0) }
    }
}
