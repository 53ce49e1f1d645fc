//! The macro supernet: stem, a fixed expansion-1 block, 21 search blocks each running its six MBConvs (and the
//! identity where the layer keeps shape) under one SE attention module, head conv, adaptive pool, classifier.
//!
//! The official block concatenates the candidates' outputs (each MBConv with its own residual, plus x itself for
//! the identity) and gates the concatenation. Here x is the [`Common`] term of the block's [`GatedSum`]: the squeeze
//! of x + branch is squeeze(x) + squeeze(branch), so x is squeezed once, and the identity and all residuals fold into
//! one x ⊙ Σ g.
use super::arch::{self, LayerShape, MbConvKind, MAX_CANDIDATES, MBCONVS};
use super::blocks::{ConvBnRelu6, ConvInit, MbConv};
use crate::config::Section;
use crate::error::{ensure, Result};
use crate::nn::gated::{squeeze, Branch, Common, GatedSum};
use crate::nn::graph::{Export, Graph, Op, Value};
use crate::nn::init::linear;
use crate::nn::layers::Linear;
use crate::space::SupernetOutput;
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// `[supernet]` of the macro space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxylessConfig {
    /// Channel multiplier of every layer (the head keeps 1728 channels up to width 1).
    pub width_mult: f64,
    /// SE reduction: the hidden width is ⌊channels · candidates / ratio⌋.
    pub attention_ratio: i64,
}

impl Default for ProxylessConfig {
    fn default() -> Self {
        ProxylessConfig { width_mult: 1.0, attention_ratio: 16 }
    }
}

impl Section for ProxylessConfig {
    fn validate(&self) -> Result<()> {
        validate_width(self.width_mult, "supernet.width_mult")?;
        ensure!(self.attention_ratio > 0, "supernet.attention_ratio must be at least 1");
        Ok(())
    }
}

/// Refuses widths at which a layer would gain or lose the identity (its input and output channels rounding to
/// the same or different numbers than at width 1): genotypes would then mean different networks.
pub fn validate_width(width_mult: f64, field: &str) -> Result<()> {
    ensure!(width_mult.is_finite() && width_mult > 0.0, "{field} must be a positive number (got {width_mult})");
    let shapes = arch::layer_shapes(width_mult, 224);
    let bad = (0..arch::LAYERS).find(|&l| shapes[l].skippable() != arch::skippable(l) || shapes[l].oup == 0);
    ensure!(bad.is_none(), "{field} = {width_mult} changes which layers can be skipped (layer {})", bad.unwrap_or(0));
    Ok(())
}

/// One searchable layer (the official `AttSuperBlock`): `_ops.{0..5}` and `attention_layer`.
#[derive(Debug)]
pub struct SearchBlock {
    ops: Vec<MbConv>,
    gated: GatedSum,
    shape: LayerShape,
}

impl SearchBlock {
    pub fn new(p: &nn::Path, shape: LayerShape, ratio: i64) -> Self {
        let ops = (0..MBCONVS)
            .map(|k| {
                let kind = MbConvKind::of(k);
                MbConv::new(p / "_ops" / k, shape.inp, shape.oup, kind, shape.stride, ConvInit::FanOutNormal)
            })
            .collect();
        let n = shape.candidates() as i64;
        SearchBlock { ops, gated: GatedSum::new(p / "attention_layer", n, shape.oup, ratio), shape }
    }

    /// The gated sum and this forward's importance per candidate slot, shape (7,): Σ over the batch of the mean
    /// of the candidate's gates over its channels (0 for an identity the layer does not have).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut branches: Vec<Branch> = self
            .ops
            .iter()
            .map(|op| {
                let b = op.branch(xs, train);
                let sq = squeeze(&b);
                Some((b, sq))
            })
            .collect();
        let folded = self.shape.skippable();
        let sx = folded.then(|| squeeze(xs));
        let common = sx.as_ref().map(|squeezed| Common { value: xs, squeezed });
        if folded {
            // The identity: its output is all common term.
            branches.push(None);
        }
        let mut out = None;
        let per_candidate = self.gated.accumulate(&branches, common, &mut out);
        let out = out.expect("a search block has six MBConvs");
        let n = branches.len() as i64;
        let kind = per_candidate.kind();
        let importance = per_candidate.detach().mean_dim(2, false, kind).sum_dim_intlist(0, false, kind);
        let importance = if n < MAX_CANDIDATES as i64 {
            Tensor::cat(&[importance.shallow_clone(), importance.zeros_like().narrow(0, 0, 1)], 0)
        } else {
            importance
        };
        (out, importance)
    }
}

/// The stem (`conv_bn`, `MBConv_ratio_1`) and the head (`conv_1x1_bn`, adaptive pool) shared by the supernet and
/// the retrain network; the classifier sits in each (`classifier.0` or, after dropout, `classifier.1`).
#[derive(Debug)]
pub struct StemHead {
    stem: ConvBnRelu6,
    first: MbConv,
    head: ConvBnRelu6,
}

impl StemHead {
    pub fn new(p: &nn::Path, width_mult: f64, in_channels: i64, init: ConvInit) -> Self {
        let (c0, c1) =
            (arch::scaled(arch::STEM_CHANNELS, width_mult), arch::scaled(arch::FIRST_BLOCK_CHANNELS, width_mult));
        let last = arch::scaled(432, width_mult);
        let e1 = MbConvKind { kernel: 3, expand: 1 };
        StemHead {
            stem: ConvBnRelu6::new(p / "conv_bn", in_channels, c0, 3, 2, init),
            first: MbConv::new(p / "MBConv_ratio_1", c0, c1, e1, 1, init),
            head: ConvBnRelu6::new(p / "conv_1x1_bn", last, arch::head_channels(width_mult), 1, 1, init),
        }
    }

    pub fn stem(&self, xs: &Tensor, train: bool) -> Tensor {
        self.first.forward_t(&self.stem.forward_t(xs, train), train)
    }

    /// Head conv and global average pooling: (B, head channels).
    pub fn head(&self, xs: &Tensor, train: bool) -> Tensor {
        self.head.forward_t(xs, train).adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }

    pub fn export_stem(&self, g: &mut Graph, x: Value) -> Value {
        let stem = self.stem.export(g, x);
        self.first.export(g, stem)
    }

    pub fn export_head(&self, g: &mut Graph, x: Value) -> Value {
        let head = self.head.export(g, x);
        g.push(Op::GlobalAvgPool, &[head])
    }
}

/// The macro supernet (the official `AttSuperNetwork`).
#[derive(Debug)]
pub struct ProxylessSupernet {
    ends: StemHead,
    features: Vec<SearchBlock>,
    classifier: Linear,
}

impl ProxylessSupernet {
    pub fn new(p: &nn::Path, cfg: &ProxylessConfig, in_channels: i64, num_classes: i64) -> Self {
        let w = cfg.width_mult;
        let ends = StemHead::new(p, w, in_channels, ConvInit::FanOutNormal);
        // Channels and strides only: the input size does not change the modules.
        let features = arch::layer_shapes(w, 224)
            .into_iter()
            .enumerate()
            .map(|(l, shape)| SearchBlock::new(&(p / "features" / l), shape, cfg.attention_ratio))
            .collect();
        let classifier = linear(p / "classifier" / 0, arch::head_channels(w), num_classes, true);
        ProxylessSupernet { ends, features, classifier }
    }

    /// Logits and the importances of this forward, shape (21, 7).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> SupernetOutput {
        let mut x = self.ends.stem(xs, train);
        let mut importance = Vec::with_capacity(self.features.len());
        for block in &self.features {
            let (y, imp) = block.forward_t(&x, train);
            x = y;
            importance.push(imp);
        }
        let logits = self.ends.head(&x, train).apply(&self.classifier);
        SupernetOutput { logits, importance: Tensor::stack(&importance, 0) }
    }
}
