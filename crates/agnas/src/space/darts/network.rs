//! The evaluation network (`NetworkCIFAR`): the derived cells stacked 20 deep with an auxiliary head (spec §2.1).
//!
//! Parameter names are the official `model.NetworkCIFAR`'s state_dict keys, so released PyTorch weights converted to
//! safetensors load as they are.
use super::genotype::{CellGenotype, CellKind, DartsOp, Genotype};
use super::op;
use super::supernet::preprocess;
use crate::error::{ensure, Result};
use crate::nn::graph::{Export, Graph, Layer, Op, Value};
use crate::nn::init::{batch_norm2d, conv2d, linear};
use crate::nn::layers::ConvSpec;
use crate::nn::layers::{Conv2d, Linear};
use crate::nn::ops::ReLUConvBN;
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// Shape of the evaluation network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Channels of the first cells (doubled at each reduction).
    pub channels: i64,
    pub layers: usize,
    /// The auxiliary classifier after the second reduction (training only).
    pub auxiliary: bool,
    /// Weight of the auxiliary head's loss.
    pub auxiliary_weight: f64,
    /// Drop-path probability reached at the last epoch (ramped linearly from 0).
    pub drop_path: f64,
    pub stem_multiplier: i64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            channels: 36,
            layers: 20,
            auxiliary: true,
            auxiliary_weight: 0.4,
            drop_path: 0.2,
            stem_multiplier: 3,
        }
    }
}

impl NetworkConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.channels >= 2 && self.channels % 2 == 0, "network.channels must be even and >= 2");
        ensure!(self.layers >= 3, "network.layers must be at least 3 (two reductions and a normal cell)");
        ensure!(self.stem_multiplier >= 1, "network.stem_multiplier must be at least 1");
        ensure!((0.0..1.0).contains(&self.drop_path), "network.drop_path must be in [0, 1) (got {})", self.drop_path);
        ensure!(self.auxiliary_weight >= 0.0, "network.auxiliary_weight must be >= 0");
        Ok(())
    }
}

/// Zeroes whole samples with probability `p` and rescales the rest (`drop_path` of DARTS, on op outputs).
pub fn drop_path(xs: &Tensor, p: f64) -> Tensor {
    if p <= 0.0 {
        return xs.shallow_clone();
    }
    let keep = 1.0 - p;
    let mask = Tensor::empty([xs.size()[0], 1, 1, 1], (Kind::Float, xs.device())).bernoulli_float_(keep);
    xs / keep * mask.to_kind(xs.kind())
}

#[derive(Debug)]
struct EvalCell {
    preprocess0: Box<dyn Layer>,
    preprocess1: ReLUConvBN,
    /// Each op with its input state and whether it is an identity (identities are never dropped).
    ops: Vec<(Box<dyn Layer>, usize, bool)>,
    concat: Vec<usize>,
}

impl EvalCell {
    fn new(
        p: nn::Path,
        genotype: &CellGenotype,
        kind: CellKind,
        c_pp: i64,
        c_p: i64,
        c: i64,
        reduction_prev: bool,
    ) -> Self {
        let (preprocess0, preprocess1) = preprocess(&p, c_pp, c_p, c, reduction_prev, true);
        let ops = genotype
            .ops
            .iter()
            .enumerate()
            .map(|(k, &(o, input))| {
                let stride = if kind == CellKind::Reduce && input < 2 { 2 } else { 1 };
                (op(&p / "_ops" / k, o, c, stride, true), input, o == DartsOp::SkipConnect && stride == 1)
            })
            .collect();
        EvalCell { preprocess0, preprocess1, ops, concat: genotype.concat.clone() }
    }

    fn forward_t(&self, s0: &Tensor, s1: &Tensor, train: bool, drop_prob: f64) -> Tensor {
        let mut states = vec![self.preprocess0.forward_t(s0, train), self.preprocess1.forward_t(s1, train)];
        for pair in self.ops.chunks(2) {
            let node = pair
                .iter()
                .map(|(op, input, identity)| {
                    let h = op.forward_t(&states[*input], train);
                    if train && !identity {
                        drop_path(&h, drop_prob)
                    } else {
                        h
                    }
                })
                .reduce(|a, b| a + b)
                .expect("two ops per node");
            states.push(node);
        }
        Tensor::cat(&self.concat.iter().map(|&i| states[i].shallow_clone()).collect::<Vec<_>>(), 1)
    }

    fn export(&self, g: &mut Graph, s0: Value, s1: Value) -> Value {
        let mut states = vec![self.preprocess0.export(g, s0), self.preprocess1.export(g, s1)];
        for pair in self.ops.chunks(2) {
            let outputs: Vec<Value> = pair.iter().map(|(op, input, _)| op.export(g, states[*input])).collect();
            states.push(g.sum(&outputs));
        }
        let concat: Vec<Value> = self.concat.iter().map(|&i| states[i]).collect();
        g.push(Op::Concat, &concat)
    }
}

/// The auxiliary classifier on the 8×8 maps after the second reduction (`auxiliary_head.features.*`).
#[derive(Debug)]
struct AuxiliaryHead {
    conv1: Conv2d,
    bn1: nn::BatchNorm,
    conv2: Conv2d,
    bn2: nn::BatchNorm,
    classifier: Linear,
}

impl AuxiliaryHead {
    fn new(p: nn::Path, c: i64, num_classes: i64) -> Self {
        let f = &p / "features";
        AuxiliaryHead {
            conv1: conv2d(&f / "2", c, 128, 1, ConvSpec::default()),
            bn1: batch_norm2d(&f / "3", 128, true),
            conv2: conv2d(&f / "5", 128, 768, 2, ConvSpec::default()),
            bn2: batch_norm2d(&f / "6", 768, true),
            classifier: linear(&p / "classifier", 768, num_classes, true),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = xs.relu().avg_pool2d([5, 5], [3, 3], [0, 0], false, false, None::<i64>);
        let h = h.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let h = h.apply(&self.conv2).apply_t(&self.bn2, train).relu();
        h.flatten(1, -1).apply(&self.classifier)
    }
}

/// The evaluation network of a genotype.
#[derive(Debug)]
pub struct NetworkCifar {
    stem_conv: Conv2d,
    stem_bn: nn::BatchNorm,
    cells: Vec<EvalCell>,
    auxiliary: Option<(usize, AuxiliaryHead)>,
    classifier: Linear,
}

/// Logits of one forward, and the auxiliary head's in training.
pub struct NetworkOutput {
    pub logits: Tensor,
    pub aux: Option<Tensor>,
}

impl NetworkCifar {
    pub fn new(p: &nn::Path, cfg: &NetworkConfig, genotype: &Genotype, in_channels: i64, num_classes: i64) -> Self {
        let stem = p / "stem";
        let c_stem = cfg.stem_multiplier * cfg.channels;
        let (mut c_pp, mut c_p, mut c) = (c_stem, c_stem, cfg.channels);
        let mut reduction_prev = false;
        let mut cells = Vec::with_capacity(cfg.layers);
        let mut auxiliary = None;
        let aux_after = 2 * cfg.layers / 3;
        for i in 0..cfg.layers {
            let (cell, kind) = genotype.cell(i, cfg.layers);
            if kind == CellKind::Reduce {
                c *= 2;
            }
            cells.push(EvalCell::new(p / "cells" / i, cell, kind, c_pp, c_p, c, reduction_prev));
            reduction_prev = kind == CellKind::Reduce;
            (c_pp, c_p) = (c_p, cell.concat.len() as i64 * c);
            if cfg.auxiliary && i == aux_after {
                auxiliary = Some((i, AuxiliaryHead::new(p / "auxiliary_head", c_p, num_classes)));
            }
        }
        NetworkCifar {
            stem_conv: conv2d(&stem / "0", in_channels, c_stem, 3, ConvSpec::default().padding(1)),
            stem_bn: batch_norm2d(&stem / "1", c_stem, true),
            cells,
            auxiliary,
            classifier: linear(p / "classifier", c_p, num_classes, true),
        }
    }

    /// `drop_prob` applies to non-identity op outputs in training; the auxiliary logits are computed in training only.
    pub fn forward_t(&self, xs: &Tensor, train: bool, drop_prob: f64) -> NetworkOutput {
        let stem = xs.apply(&self.stem_conv).apply_t(&self.stem_bn, train);
        let (mut s0, mut s1) = (stem.shallow_clone(), stem);
        let mut aux = None;
        for (i, cell) in self.cells.iter().enumerate() {
            let out = cell.forward_t(&s0, &s1, train, drop_prob);
            (s0, s1) = (s1, out);
            if let Some((at, head)) = &self.auxiliary {
                if train && *at == i {
                    aux = Some(head.forward_t(&s1, train));
                }
            }
        }
        let pooled = s1.mean_dim([2i64, 3].as_slice(), false, s1.kind());
        NetworkOutput { logits: pooled.apply(&self.classifier), aux }
    }
}

/// The eval-mode network: the auxiliary head and drop-path are training only, so they are not in the graph.
impl Export for NetworkCifar {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let stem = g.conv(&self.stem_conv, x);
        let stem = g.batch_norm(&self.stem_bn, stem);
        let (mut s0, mut s1) = (stem, stem);
        for cell in &self.cells {
            (s0, s1) = (s1, cell.export(g, s0, s1));
        }
        let pooled = g.push(Op::GlobalAvgPool, &[s1]);
        g.linear(&self.classifier, pooled)
    }
}

/// Trainable parameters outside the auxiliary head, as the field's `count_parameters_in_MB` counts them.
pub fn count_params(vs: &nn::VarStore) -> i64 {
    vs.variables()
        .iter()
        .filter(|(name, v)| v.requires_grad() && !name.starts_with("auxiliary"))
        .map(|(_, v)| v.numel() as i64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(name: &str, num_classes: i64) -> i64 {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let g = Genotype::builtin(name).unwrap();
        let _net = NetworkCifar::new(&vs.root(), &NetworkConfig::default(), &g, 3, num_classes);
        count_params(&vs)
    }

    #[test]
    fn parameter_counts_match_the_spec() {
        assert_eq!(params("agnas", 10), 3_611_998);
        assert_eq!(params("darts_v2", 10), 3_349_342);
        assert_eq!(params("agnas", 100), 3_663_928);
    }

    #[test]
    fn forward_shapes_and_auxiliary_only_in_training() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = NetworkConfig { channels: 4, layers: 5, ..NetworkConfig::default() };
        let net = NetworkCifar::new(&vs.root(), &cfg, &Genotype::builtin("agnas").unwrap(), 3, 10);
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, tch::Device::Cpu));
        let out = net.forward_t(&x, true, 0.2);
        assert_eq!(out.logits.size(), [2, 10]);
        assert_eq!(out.aux.unwrap().size(), [2, 10]);
        assert!(net.forward_t(&x, false, 0.2).aux.is_none());
    }

    #[test]
    fn drop_path_drops_whole_samples_and_keeps_the_mean() {
        tch::manual_seed(0);
        let x = Tensor::ones([4000, 2, 3, 3], (Kind::Float, tch::Device::Cpu));
        let y = drop_path(&x, 0.25);
        let per_sample = y.sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float);
        let zero = per_sample.eq(0.0).sum(Kind::Float).double_value(&[]) / 4000.0;
        assert!((zero - 0.25).abs() < 0.03, "dropped share {zero}");
        let kept = per_sample.max().double_value(&[]);
        assert!((kept - 18.0 / 0.75).abs() < 1e-4, "kept samples are scaled by 1/keep: {kept}");
    }
}
