//! The retrain network of a macro architecture (the official `retrain_architecture/model.py`): the chosen MBConv
//! of every layer that is not skipped, numbered `features.{j}` over those layers only, and a classifier after
//! dropout (`classifier.1`). PyTorch's default initialisation, as the official retrain uses.
use super::arch::{self, Arch, MbConvKind};
use super::blocks::{ConvInit, MbConv};
use super::supernet::{validate_width, StemHead};
use crate::config::Section;
use crate::error::{ensure, Result};
use crate::nn::graph::{Export, Graph, Op, Value};
use crate::nn::init::linear;
use crate::nn::layers::Linear;
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// `[network]` of the macro space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxylessNetworkConfig {
    pub width_mult: f64,
    /// Dropout before the classifier.
    pub dropout: f64,
}

impl Default for ProxylessNetworkConfig {
    fn default() -> Self {
        ProxylessNetworkConfig { width_mult: 1.0, dropout: 0.2 }
    }
}

impl Section for ProxylessNetworkConfig {
    fn validate(&self) -> Result<()> {
        validate_width(self.width_mult, "network.width_mult")?;
        ensure!((0.0..1.0).contains(&self.dropout), "network.dropout must be in [0, 1) (got {})", self.dropout);
        Ok(())
    }
}

#[derive(Debug)]
pub struct ProxylessNetwork {
    ends: StemHead,
    features: Vec<MbConv>,
    classifier: Linear,
    dropout: f64,
}

impl ProxylessNetwork {
    pub fn new(
        p: &nn::Path,
        cfg: &ProxylessNetworkConfig,
        genotype: &Arch,
        in_channels: i64,
        num_classes: i64,
    ) -> Self {
        let w = cfg.width_mult;
        let ends = StemHead::new(p, w, in_channels, ConvInit::PyTorch);
        let features = arch::layer_shapes(w, 224)
            .into_iter()
            .zip(genotype.0)
            .filter_map(|(shape, choice)| choice.map(|id| (shape, MbConvKind::of(id as usize))))
            .enumerate()
            .map(|(j, (s, kind))| MbConv::new(p / "features" / j, s.inp, s.oup, kind, s.stride, ConvInit::PyTorch))
            .collect();
        let classifier = linear(p / "classifier" / 1, arch::head_channels(w), num_classes, true);
        ProxylessNetwork { ends, features, classifier, dropout: cfg.dropout }
    }

    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let x = self.features.iter().fold(self.ends.stem(xs, train), |x, block| block.forward_t(&x, train));
        self.ends.head(&x, train).dropout(self.dropout, train).apply(&self.classifier)
    }
}

impl Export for ProxylessNetwork {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        let x = self.features.iter().fold(self.ends.export_stem(g, x), |x, block| block.export(g, x));
        let pooled = self.ends.export_head(g, x);
        let dropped = g.push(Op::Dropout(self.dropout), &[pooled]);
        g.linear(&self.classifier, dropped)
    }
}
