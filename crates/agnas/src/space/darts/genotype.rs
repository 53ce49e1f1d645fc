//! DARTS-space genotypes: which op on which two inputs each intermediate node of a cell takes.
//!
//! A cell lists two `(op, input)` pairs per intermediate node; input 0 is c_{k-2}, 1 is c_{k-1}, and 2.. are the
//! cell's earlier nodes. An evaluation network takes either the DARTS form (one normal and one reduction cell,
//! repeated) or the AGNAS form (one cell per stage slot: normal, reduce, normal, reduce, normal).
use crate::error::{bail, ensure, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A candidate operation, in the AGNAS `PRIMITIVES` order (which fixes the attention slices; `none` is last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DartsOp {
    SepConv3x3,
    SepConv5x5,
    DilConv3x3,
    DilConv5x5,
    SkipConnect,
    AvgPool3x3,
    MaxPool3x3,
    None,
}

impl DartsOp {
    /// All ops in `PRIMITIVES` order, so `ALL[op.index()] == op`.
    pub const ALL: [DartsOp; 8] = [
        DartsOp::SepConv3x3,
        DartsOp::SepConv5x5,
        DartsOp::DilConv3x3,
        DartsOp::DilConv5x5,
        DartsOp::SkipConnect,
        DartsOp::AvgPool3x3,
        DartsOp::MaxPool3x3,
        DartsOp::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DartsOp::SepConv3x3 => "sep_conv_3x3",
            DartsOp::SepConv5x5 => "sep_conv_5x5",
            DartsOp::DilConv3x3 => "dil_conv_3x3",
            DartsOp::DilConv5x5 => "dil_conv_5x5",
            DartsOp::SkipConnect => "skip_connect",
            DartsOp::AvgPool3x3 => "avg_pool_3x3",
            DartsOp::MaxPool3x3 => "max_pool_3x3",
            DartsOp::None => "none",
        }
    }

    /// Skip, pooling and `none`: the ops without weights that DARTS-style searches collapse to.
    pub fn parameter_free(self) -> bool {
        matches!(self, DartsOp::SkipConnect | DartsOp::AvgPool3x3 | DartsOp::MaxPool3x3 | DartsOp::None)
    }

    /// Position in [`DartsOp::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DartsOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DartsOp {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match DartsOp::ALL.iter().find(|op| op.name() == s) {
            Some(op) => Ok(*op),
            None => {
                let names: Vec<&str> = DartsOp::ALL.iter().map(|o| o.name()).collect();
                bail!("unknown op `{s}` (the DARTS space has {})", names.join(", "))
            }
        }
    }
}

impl Serialize for DartsOp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for DartsOp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether a cell keeps the resolution (normal) or halves it and doubles the channels (reduce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    Normal,
    Reduce,
}

impl CellKind {
    /// The kind of cell `i` in a network of `layers` cells: reductions at ⌊layers/3⌋ and ⌊2·layers/3⌋.
    pub fn of(i: usize, layers: usize) -> CellKind {
        if i == layers / 3 || i == 2 * layers / 3 {
            CellKind::Reduce
        } else {
            CellKind::Normal
        }
    }
}

/// One cell: `ops[2i]` and `ops[2i+1]` feed intermediate node i; `concat` lists the states joined as the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellGenotype {
    pub ops: Vec<(DartsOp, usize)>,
    pub concat: Vec<usize>,
}

impl CellGenotype {
    /// Builds a cell from `(op name, input)` pairs with all intermediate nodes concatenated.
    fn from_names(pairs: &[(&str, usize)]) -> CellGenotype {
        let ops: Vec<(DartsOp, usize)> =
            pairs.iter().map(|&(name, input)| (name.parse().expect("built-in op names are valid"), input)).collect();
        let concat = (2..2 + ops.len() / 2).collect();
        CellGenotype { ops, concat }
    }

    /// Intermediate nodes.
    pub fn steps(&self) -> usize {
        self.ops.len() / 2
    }

    /// Checks that every node reads existing states and that the output concatenates existing states.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !self.ops.is_empty() && self.ops.len().is_multiple_of(2),
            "a cell needs two (op, input) pairs per node, got {} pairs",
            self.ops.len()
        );
        for (k, &(op, input)) in self.ops.iter().enumerate() {
            let node = k / 2;
            ensure!(
                input < node + 2,
                "pair {k} ({op}, {input}) feeds node {} but reads state {input}; node {} can read states 0..={}",
                node + 2,
                node + 2,
                node + 1
            );
        }
        ensure!(!self.concat.is_empty(), "a cell must concatenate at least one state");
        for &c in &self.concat {
            ensure!(c < self.steps() + 2, "concat names state {c} but the cell has states 0..={}", self.steps() + 1);
        }
        Ok(())
    }
}

/// The cells of an evaluation network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "snake_case", deny_unknown_fields)]
pub enum Genotype {
    /// DARTS: `normal` at every normal position, `reduce` at both reductions.
    NormalReduce { normal: CellGenotype, reduce: CellGenotype },
    /// AGNAS: one cell per stage slot `[normal, reduce, normal, reduce, normal]`.
    Stages { cells: Vec<CellGenotype> },
}

/// Names accepted by [`Genotype::builtin`].
pub const BUILTIN_NAMES: [&str; 3] = ["agnas", "darts_v1", "darts_v2"];

impl Genotype {
    /// The released AGNAS cells (Cell_0, Cell_2, Cell_3, Cell_5, Cell_6 of the official `genotypes.py`) and the
    /// DARTS genotypes of Liu et al.
    pub fn builtin(name: &str) -> Option<Genotype> {
        let cell = CellGenotype::from_names;
        match name {
            "agnas" => Some(Genotype::Stages {
                cells: vec![
                    cell(&[
                        ("sep_conv_3x3", 0),
                        ("dil_conv_3x3", 1),
                        ("dil_conv_5x5", 0),
                        ("skip_connect", 1),
                        ("sep_conv_3x3", 0),
                        ("sep_conv_5x5", 3),
                        ("dil_conv_5x5", 0),
                        ("sep_conv_3x3", 3),
                    ]),
                    cell(&[
                        ("max_pool_3x3", 0),
                        ("sep_conv_5x5", 1),
                        ("skip_connect", 0),
                        ("sep_conv_5x5", 1),
                        ("max_pool_3x3", 0),
                        ("skip_connect", 1),
                        ("sep_conv_5x5", 0),
                        ("sep_conv_3x3", 1),
                    ]),
                    cell(&[
                        ("skip_connect", 0),
                        ("sep_conv_3x3", 1),
                        ("dil_conv_5x5", 0),
                        ("sep_conv_3x3", 1),
                        ("dil_conv_3x3", 0),
                        ("sep_conv_5x5", 1),
                        ("sep_conv_3x3", 1),
                        ("dil_conv_5x5", 4),
                    ]),
                    cell(&[
                        ("skip_connect", 1),
                        ("skip_connect", 0),
                        ("dil_conv_3x3", 1),
                        ("dil_conv_3x3", 0),
                        ("avg_pool_3x3", 0),
                        ("max_pool_3x3", 1),
                        ("avg_pool_3x3", 0),
                        ("max_pool_3x3", 1),
                    ]),
                    cell(&[
                        ("skip_connect", 0),
                        ("dil_conv_5x5", 1),
                        ("sep_conv_3x3", 0),
                        ("sep_conv_3x3", 1),
                        ("sep_conv_5x5", 0),
                        ("max_pool_3x3", 2),
                        ("sep_conv_5x5", 0),
                        ("sep_conv_3x3", 1),
                    ]),
                ],
            }),
            "darts_v1" => Some(Genotype::NormalReduce {
                normal: cell(&[
                    ("sep_conv_3x3", 1),
                    ("sep_conv_3x3", 0),
                    ("skip_connect", 0),
                    ("sep_conv_3x3", 1),
                    ("skip_connect", 0),
                    ("sep_conv_3x3", 1),
                    ("sep_conv_3x3", 0),
                    ("skip_connect", 2),
                ]),
                reduce: cell(&[
                    ("max_pool_3x3", 0),
                    ("max_pool_3x3", 1),
                    ("skip_connect", 2),
                    ("max_pool_3x3", 0),
                    ("max_pool_3x3", 0),
                    ("skip_connect", 2),
                    ("skip_connect", 2),
                    ("avg_pool_3x3", 0),
                ]),
            }),
            "darts_v2" => Some(Genotype::NormalReduce {
                normal: cell(&[
                    ("sep_conv_3x3", 0),
                    ("sep_conv_3x3", 1),
                    ("sep_conv_3x3", 0),
                    ("sep_conv_3x3", 1),
                    ("sep_conv_3x3", 1),
                    ("skip_connect", 0),
                    ("skip_connect", 0),
                    ("dil_conv_3x3", 2),
                ]),
                reduce: cell(&[
                    ("max_pool_3x3", 0),
                    ("max_pool_3x3", 1),
                    ("skip_connect", 2),
                    ("max_pool_3x3", 1),
                    ("max_pool_3x3", 0),
                    ("skip_connect", 2),
                    ("skip_connect", 2),
                    ("max_pool_3x3", 1),
                ]),
            }),
            _ => None,
        }
    }

    /// A uniformly random genotype of four-node cells in the stage form (`random:<seed>`), the baseline of the field.
    pub fn random(seed: u64) -> Genotype {
        use rand::SeedableRng;
        Genotype::random_from(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), 4, false)
    }

    /// A uniformly random stage-form genotype of `steps`-node cells: each node takes two distinct earlier states and,
    /// for each, one of the seven ops other than `none`, or one of all eight with `allow_none`.
    pub fn random_from(rng: &mut dyn rand::RngCore, steps: usize, allow_none: bool) -> Genotype {
        use rand::seq::{index, SliceRandom};
        let ops: Vec<DartsOp> = DartsOp::ALL.iter().copied().filter(|&o| allow_none || o != DartsOp::None).collect();
        let cells = (0..5)
            .map(|_| {
                let mut pairs = Vec::with_capacity(2 * steps);
                for node in 0..steps {
                    for input in index::sample(rng, node + 2, 2).into_iter() {
                        pairs.push((*ops.choose(rng).expect("seven ops"), input));
                    }
                }
                CellGenotype { ops: pairs, concat: (2..steps + 2).collect() }
            })
            .collect();
        Genotype::Stages { cells }
    }

    /// The cell at position `i` of a network of `layers` cells, and its kind. The AGNAS form maps the stages as the
    /// official `NetworkCIFAR` does: slot 0 before the first reduction, 1 at it, 2 between, 3 at the second, 4 after.
    pub fn cell(&self, i: usize, layers: usize) -> (&CellGenotype, CellKind) {
        let kind = CellKind::of(i, layers);
        let cell = match self {
            Genotype::NormalReduce { normal, reduce } => match kind {
                CellKind::Normal => normal,
                CellKind::Reduce => reduce,
            },
            Genotype::Stages { cells } => {
                let (r1, r2) = (layers / 3, 2 * layers / 3);
                let slot = match i {
                    i if i < r1 => 0,
                    i if i == r1 => 1,
                    i if i < r2 => 2,
                    i if i == r2 => 3,
                    _ => 4,
                };
                &cells[slot]
            }
        };
        (cell, kind)
    }

    /// Checks every cell, and that the AGNAS form has its five slots.
    pub fn validate(&self) -> Result<()> {
        match self {
            Genotype::NormalReduce { normal, reduce } => {
                normal.validate().map_err(|e| e.context("normal cell"))?;
                reduce.validate().map_err(|e| e.context("reduce cell"))?;
            }
            Genotype::Stages { cells } => {
                ensure!(
                    cells.len() == 5,
                    "the stage form needs 5 cells (normal, reduce, normal, reduce, normal), got {}",
                    cells.len()
                );
                for (k, c) in cells.iter().enumerate() {
                    c.validate().map_err(|e| e.context(format!("stage cell {k}")))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_map_stages_like_the_official_network() {
        for name in BUILTIN_NAMES {
            Genotype::builtin(name).unwrap().validate().unwrap();
        }
        let agnas = Genotype::builtin("agnas").unwrap();
        let Genotype::Stages { cells } = &agnas else { panic!("agnas is in stage form") };
        // 20 cells: 0..6 → Cell_0, 6 → Cell_2 (reduce), 7..13 → Cell_3, 13 → Cell_5 (reduce), 14.. → Cell_6.
        let expect = [(0, 0), (5, 0), (6, 1), (7, 2), (12, 2), (13, 3), (14, 4), (19, 4)];
        for (i, slot) in expect {
            let (cell, kind) = agnas.cell(i, 20);
            assert_eq!(cell, &cells[slot], "cell {i}");
            assert_eq!(kind == CellKind::Reduce, slot % 2 == 1, "cell {i}");
        }
    }

    #[test]
    fn invalid_cells_name_the_pair() {
        let cell = CellGenotype { ops: vec![(DartsOp::SkipConnect, 0), (DartsOp::SepConv3x3, 2)], concat: vec![2] };
        let err = cell.validate().unwrap_err().to_string();
        assert!(err.contains("pair 1") && err.contains("sep_conv_3x3"), "{err}");
        assert!("sep_conv_7x7".parse::<DartsOp>().unwrap_err().to_string().contains("sep_conv_7x7"));
    }

    #[test]
    fn random_genotypes_with_none_allowed_draw_it() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let g = Genotype::random_from(&mut rng, 4, true);
        g.validate().unwrap();
        let Genotype::Stages { cells } = g else { panic!("stage form") };
        // 40 draws of eight ops: `none` is missing from all with probability (7/8)^40 < 0.5 %, and the seed is fixed.
        assert!(cells.iter().flat_map(|c| &c.ops).any(|(op, _)| *op == DartsOp::None));
    }

    #[test]
    fn random_genotypes_are_valid_seeded_and_varied() {
        let a = Genotype::random(1);
        a.validate().unwrap();
        assert_eq!(a, Genotype::random(1));
        assert_ne!(a, Genotype::random(2));
        let Genotype::Stages { cells } = a else { panic!("stage form") };
        for cell in &cells {
            for node in cell.ops.chunks(2) {
                assert_ne!(node[0].1, node[1].1, "two distinct inputs per node");
                assert!(node.iter().all(|(op, _)| *op != DartsOp::None));
            }
        }
    }

    #[test]
    fn json_round_trip() {
        for name in BUILTIN_NAMES {
            let g = Genotype::builtin(name).unwrap();
            let text = serde_json::to_string(&g).unwrap();
            assert_eq!(serde_json::from_str::<Genotype>(&text).unwrap(), g);
        }
        let text = serde_json::to_string(&Genotype::builtin("darts_v2").unwrap()).unwrap();
        assert!(text.starts_with(r#"{"form":"normal_reduce","normal":{"ops":[["sep_conv_3x3",0]"#), "{text}");
    }
}
