//! FLOPs of macro architectures by closed formula, per layer and candidate, so that costs add over layers (what
//! budgeted selection needs) and no network has to be built to price one.
//!
//! Two rules. The official lookup table (`op_flops_dict_1.0.pkl`, made with the repository's thop) counts conv
//! multiply-accumulates and a Linear as (2·in − 1)·out; agnas's own rule (what `agnas params` measures by running
//! the network) counts the Linear as in·out MACs. BN, activations and pooling count in neither.
use super::arch::{self, Arch, LayerShape, MbConvKind, LAYERS, MBCONVS};
use serde::{Deserialize, Serialize};

/// How the classifier is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::VariantNames)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum FlopsRule {
    /// The official table's: conv MACs + Linear (2·in − 1)·out.
    Table,
    /// Multiply-accumulates throughout: Linear in·out.
    Macs,
}

impl FlopsRule {
    pub fn describe(self) -> &'static str {
        match self {
            FlopsRule::Table => "official table rule: conv multiply-accumulates + Linear (2·in − 1)·out",
            FlopsRule::Macs => "multiply-accumulates: conv + Linear in·out",
        }
    }
}

/// MACs of a k×k convolution with `groups` producing `c_out` channels of `out_size`².
fn conv_macs(c_in: i64, c_out: i64, k: i64, groups: i64, out_size: i64) -> u64 {
    (c_in / groups * k * k * c_out * out_size * out_size) as u64
}

/// MACs of one MBConv at a layer of shape `s` (the expansion-1 block has no expanding 1×1).
pub fn mbconv_macs(s: &LayerShape, kind: MbConvKind) -> u64 {
    let hidden = s.inp * kind.expand;
    let expand = if kind.expand == 1 { 0 } else { conv_macs(s.inp, hidden, 1, 1, s.size) };
    let out = s.out_size();
    expand + conv_macs(hidden, hidden, kind.kernel, hidden, out) + conv_macs(hidden, s.oup, 1, 1, out)
}

/// The per-layer, per-candidate costs of one width, input size and class count.
#[derive(Debug, Clone, PartialEq)]
pub struct CostModel {
    /// Stem conv and the expansion-1 block (the table's `PreProcessing`).
    pub pre: u64,
    /// Head 1×1 conv (the table's `PostProcessing` without the classifier).
    pub head_conv: u64,
    pub classifier: (i64, i64),
    /// MACs of the six MBConvs of every layer; the identity costs nothing.
    pub layers: Vec<[u64; MBCONVS]>,
    pub shapes: Vec<LayerShape>,
}

impl CostModel {
    pub fn new(width_mult: f64, image_size: i64, num_classes: i64) -> Self {
        let stem_out = arch::conv_out(image_size, 2);
        let c0 = arch::scaled(arch::STEM_CHANNELS, width_mult);
        let first = LayerShape {
            inp: c0,
            oup: arch::scaled(arch::FIRST_BLOCK_CHANNELS, width_mult),
            stride: 1,
            size: stem_out,
        };
        let pre = conv_macs(3, c0, 3, 1, stem_out) + mbconv_macs(&first, MbConvKind { kernel: 3, expand: 1 });
        let shapes = arch::layer_shapes(width_mult, image_size);
        let last = shapes[LAYERS - 1];
        let head = arch::head_channels(width_mult);
        let layers =
            shapes.iter().map(|s| std::array::from_fn(|k| mbconv_macs(s, MbConvKind::of(k)))).collect::<Vec<_>>();
        CostModel {
            pre,
            head_conv: conv_macs(last.oup, head, 1, 1, last.out_size()),
            classifier: (head, num_classes),
            layers,
            shapes,
        }
    }

    /// What every architecture costs besides its 21 layers.
    pub fn fixed(&self, rule: FlopsRule) -> u64 {
        let (i, o) = self.classifier;
        let linear = match rule {
            FlopsRule::Table => (2 * i - 1) * o,
            FlopsRule::Macs => i * o,
        };
        self.pre + self.head_conv + linear as u64
    }

    /// The cost of candidate slot `slot` (6 = identity) at layer `l`.
    pub fn candidate(&self, l: usize, slot: usize) -> u64 {
        self.layers[l].get(slot).copied().unwrap_or(0)
    }

    pub fn arch(&self, arch: &Arch, rule: FlopsRule) -> u64 {
        self.fixed(rule) + arch.slots().iter().enumerate().map(|(l, &s)| self.candidate(l, s)).sum::<u64>()
    }

    /// Every candidate of every layer: the supernet's forward cost.
    pub fn supernet(&self, rule: FlopsRule) -> u64 {
        self.fixed(rule) + self.layers.iter().flatten().sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::proxyless::arch::{AGNAS, MODEL_PY_ALTERNATIVE};

    /// Spec §5.2/§5.3.2 acceptance numbers (width 1, 224 px, 1000 classes).
    #[test]
    fn released_architectures_cost_what_the_official_table_says() {
        let m = CostModel::new(1.0, 224, 1000);
        assert_eq!(m.pre, 30_105_600, "the table's PreProcessing");
        assert_eq!(m.fixed(FlopsRule::Table) - m.pre, 40_033_304, "the table's PostProcessing");
        let agnas = Arch::parse(AGNAS).unwrap();
        assert_eq!(m.arch(&agnas, FlopsRule::Table), 660_857_816);
        assert_eq!(m.arch(&agnas, FlopsRule::Macs), 659_130_816);
        assert_eq!(m.arch(&Arch::parse(MODEL_PY_ALTERNATIVE).unwrap(), FlopsRule::Table), 688_263_320);
        let supernet = m.supernet(FlopsRule::Table) as f64 / 1e6;
        let lut: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/proxyless_flops_lut_width1.0.json")).unwrap();
        let mut checked = 0;
        for k in 0..MBCONVS {
            let kind = MbConvKind::of(k);
            for entry in lut[kind.key()].as_array().unwrap() {
                let field = |name: &str| entry[name].as_f64().unwrap() as i64;
                let shape =
                    LayerShape { inp: field("inp"), oup: field("oup"), stride: field("stride"), size: field("h") };
                assert_eq!(mbconv_macs(&shape, kind), field("flops") as u64, "{} at {shape:?}", kind.key());
                checked += 1;
            }
        }
        assert_eq!(checked, 66, "every block entry of the official width-1.0 table");
        assert!((supernet - 3987.5).abs() < 0.1, "supernet {supernet} M");
    }
}
