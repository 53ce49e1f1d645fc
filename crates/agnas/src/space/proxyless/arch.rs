//! The macro architecture: 21 searchable layers of the ProxylessNAS-GPU channel layout, each an MBConv (kernel 3, 5
//! or 7, expansion 3 or 6) or, where the layer keeps shape, nothing (identity). Written as the official id string:
//! `1 1 -1 2 …`, ids 0..5 = k3e3, k3e6, k5e3, k5e6, k7e3, k7e6 and −1 = skip.
use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Searchable layers.
pub const LAYERS: usize = 21;
/// MBConv candidates per layer; the identity, where a layer has it, is candidate `MBCONVS` (attention slot 6).
pub const MBCONVS: usize = 6;
/// Candidates of the widest layer.
pub const MAX_CANDIDATES: usize = MBCONVS + 1;
/// The id of the identity in the official string.
pub const SKIP: i8 = -1;

/// (output channels, layers, stride of the first) per stage, at width 1.
const STAGES: [(i64, usize, i64); 6] = [(32, 4, 2), (56, 4, 2), (112, 4, 2), (128, 4, 1), (256, 4, 2), (432, 1, 1)];
/// Channels of the stem conv, the fixed expansion-1 block and the head conv at width 1.
pub const STEM_CHANNELS: i64 = 40;
pub const FIRST_BLOCK_CHANNELS: i64 = 24;
pub const HEAD_CHANNELS: i64 = 1728;

/// The AGNAS architecture released with the paper (`valid.py`'s default `--model_id`).
pub const AGNAS: &str = "1 1 -1 2 1 -1 5 1 1 -1 5 1 1 -1 1 4 3 -1 5 5 5";
/// The other id string in the official `model.py` (its `__main__`); provenance unknown.
pub const MODEL_PY_ALTERNATIVE: &str = "0 3 2 2 5 0 2 4 3 3 5 0 5 1 3 -1 5 5 5 2 0";

/// One MBConv candidate: kernel and expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MbConvKind {
    pub kernel: i64,
    pub expand: i64,
}

impl MbConvKind {
    /// Candidate `id` in the official order (kernel-major).
    pub fn of(id: usize) -> Self {
        MbConvKind { kernel: [3, 5, 7][id / 2], expand: [3, 6][id % 2] }
    }

    /// The official `blocks_keys` name.
    pub fn key(self) -> String {
        format!("mobilenet_{k}x{k}_ratio_{e}", k = self.kernel, e = self.expand)
    }

    /// Short label for tables and pictures.
    pub fn label(self) -> String {
        format!("k{}e{}", self.kernel, self.expand)
    }
}

/// The label of candidate slot `slot` (0..5 an MBConv, 6 the identity).
pub fn candidate_label(slot: usize) -> String {
    if slot < MBCONVS {
        MbConvKind::of(slot).label()
    } else {
        "skip".into()
    }
}

/// The fixed shape of one searchable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerShape {
    pub inp: i64,
    pub oup: i64,
    pub stride: i64,
    /// Input height and width.
    pub size: i64,
}

impl LayerShape {
    /// Whether the layer may be the identity (stride 1 and as many channels out as in).
    pub fn skippable(&self) -> bool {
        self.stride == 1 && self.inp == self.oup
    }

    pub fn candidates(&self) -> usize {
        MBCONVS + usize::from(self.skippable())
    }

    pub fn out_size(&self) -> i64 {
        conv_out(self.size, self.stride)
    }
}

/// Height of a stride-`s` convolution's output with "same" padding ((k − 1)/2 for odd k).
pub fn conv_out(size: i64, stride: i64) -> i64 {
    (size - 1) / stride + 1
}

/// Channels scaled by the width multiplier as the official code does (`int(c * w)`).
pub fn scaled(channels: i64, width_mult: f64) -> i64 {
    (channels as f64 * width_mult) as i64
}

/// Head channels: 1728, or scaled up for widths above 1 (the official rule).
pub fn head_channels(width_mult: f64) -> i64 {
    if width_mult > 1.0 {
        scaled(HEAD_CHANNELS, width_mult)
    } else {
        HEAD_CHANNELS
    }
}

/// The 21 layers' shapes for a width multiplier and input size (224 for ImageNet).
pub fn layer_shapes(width_mult: f64, image_size: i64) -> Vec<LayerShape> {
    let mut size = conv_out(image_size, 2);
    let mut inp = scaled(FIRST_BLOCK_CHANNELS, width_mult);
    let mut shapes = Vec::with_capacity(LAYERS);
    for (c, n, s) in STAGES {
        let oup = scaled(c, width_mult);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let shape = LayerShape { inp, oup, stride, size };
            size = shape.out_size();
            inp = oup;
            shapes.push(shape);
        }
    }
    shapes
}

/// Whether layer `l` may be skipped (the same at every width: it depends on strides and the channel table only).
pub fn skippable(l: usize) -> bool {
    layer_shapes(1.0, 224)[l].skippable()
}

/// One choice per layer: `Some(id)` an MBConv candidate 0..5, `None` the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arch(pub [Option<u8>; LAYERS]);

impl Arch {
    /// Parses the official id string (21 integers separated by spaces or commas, −1 = skip; brackets allowed).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let err = |message: String| Error::Genotype { source_name: format!("`{text}`"), message };
        let tokens: Vec<&str> = text
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        if tokens.len() != LAYERS {
            return Err(err(format!("a macro architecture has {LAYERS} layer ids, this has {}", tokens.len())));
        }
        let mut ids = [None; LAYERS];
        for (l, t) in tokens.iter().enumerate() {
            let id: i64 = t.parse().map_err(|_| err(format!("layer {l}: `{t}` is not an integer id")))?;
            ids[l] = match id {
                -1 => None,
                0..=5 => Some(id as u8),
                _ => return Err(err(format!("layer {l}: id {id} is not one of -1 (skip) or 0..5"))),
            };
        }
        let arch = Arch(ids);
        match arch.unskippable_skip() {
            Some(message) => Err(err(message)),
            None => Ok(arch),
        }
    }

    /// Refuses the identity where a layer changes resolution or channels (the official retrain network would
    /// silently build a different network there).
    pub fn validate(&self) -> Result<(), Error> {
        match self.unskippable_skip() {
            Some(message) => Err(Error::Genotype { source_name: self.to_string(), message }),
            None => Ok(()),
        }
    }

    fn unskippable_skip(&self) -> Option<String> {
        let l = (0..LAYERS).find(|&l| self.0[l].is_none() && !skippable(l))?;
        Some(format!("layer {l} changes stride or channels and cannot be skipped (-1)"))
    }

    /// The official ids, −1 for skip.
    pub fn ids(&self) -> [i8; LAYERS] {
        self.0.map(|c| c.map_or(SKIP, |id| id as i8))
    }

    /// The attention slot of each layer's choice (the identity is slot 6).
    pub fn slots(&self) -> [usize; LAYERS] {
        self.0.map(|c| c.map_or(MBCONVS, usize::from))
    }

    /// The architecture of attention slots per layer (the inverse of [`Arch::slots`]).
    pub fn from_slots(slots: &[usize]) -> Result<Self, Error> {
        let text: Vec<String> =
            slots.iter().map(|&s| if s == MBCONVS { SKIP.to_string() } else { s.to_string() }).collect();
        Arch::parse(&text.join(" "))
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.ids().iter().map(i8::to_string).collect();
        f.write_str(&ids.join(" "))
    }
}

impl Serialize for Arch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Arch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Arch::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of spec §2.3 at width 1 and 224 px, and the skippable layers of §5.3.3.
    #[test]
    fn layer_table_matches_the_official_backbone() {
        let shapes = layer_shapes(1.0, 224);
        let table: Vec<(i64, i64, i64, i64)> = shapes.iter().map(|s| (s.inp, s.oup, s.size, s.stride)).collect();
        assert_eq!(table[0], (24, 32, 112, 2));
        assert_eq!(table[4], (32, 56, 56, 2));
        assert_eq!(table[12], (112, 128, 14, 1));
        assert_eq!(table[16], (128, 256, 14, 2));
        assert_eq!(table[20], (256, 432, 7, 1));
        let skips: Vec<usize> = (0..LAYERS).filter(|&l| skippable(l)).collect();
        assert_eq!(skips, [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19]);
        assert_eq!(shapes[20].out_size(), 7);
        assert_eq!(layer_shapes(0.5, 64)[0], LayerShape { inp: 12, oup: 16, stride: 2, size: 32 });
    }

    #[test]
    fn ids_round_trip_and_bad_strings_are_refused() {
        let arch = Arch::parse(AGNAS).unwrap();
        assert_eq!(arch.to_string(), AGNAS);
        assert_eq!(Arch::parse("[1, 1, -1, 2, 1, -1, 5, 1, 1, -1, 5, 1, 1, -1, 1, 4, 3, -1, 5, 5, 5]").unwrap(), arch);
        assert_eq!(Arch::from_slots(&arch.slots()).unwrap(), arch);
        assert_eq!(MbConvKind::of(3).key(), "mobilenet_5x5_ratio_6");
        let cases = [
            ("1 1 -1", "21 layer ids"),
            ("-1 1 -1 2 1 -1 5 1 1 -1 5 1 1 -1 1 4 3 -1 5 5 5", "layer 0"),
            ("1 1 -1 2 1 -1 5 1 1 -1 5 1 1 -1 1 4 3 -1 5 5 -1", "layer 20"),
            ("1 1 -1 2 1 -1 5 1 1 -1 5 1 1 -1 1 4 3 -1 5 5 6", "id 6"),
            ("1 1 -1 2 1 -1 5 1 1 -1 5 1 1 -1 1 4 3 -1 5 5 x", "`x`"),
        ];
        for (text, want) in cases {
            let err = Arch::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
