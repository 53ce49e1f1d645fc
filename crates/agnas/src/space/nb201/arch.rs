//! NAS-Bench-201 cell architectures: five candidate ops on the six edges of a four-node DAG.
//!
//! The textual form is the benchmark's own, e.g.
//! `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|`:
//! one `+`-separated group per node 1..=3, listing `op~input` for every earlier node in order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of distinct cells, `5^6`; also one past the largest [`Arch::to_code`].
pub const NUM_ARCHS: u32 = 15_625;

/// The cell's edges as `(to_node, from_node)`; [`Arch::ops`] and the text form follow this order.
pub const EDGES: [(usize, usize); 6] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];

/// Intermediate nodes of the cell; node 0 is the cell input.
const NODES: usize = 3;

/// Candidate operation on one edge. The discriminants are the benchmark's op indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Nb201Op {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "skip_connect")]
    SkipConnect,
    #[serde(rename = "nor_conv_1x1")]
    NorConv1x1,
    #[serde(rename = "nor_conv_3x3")]
    NorConv3x3,
    #[serde(rename = "avg_pool_3x3")]
    AvgPool3x3,
}

impl Nb201Op {
    /// All ops in index order, so `ALL[op.index()] == op`.
    pub const ALL: [Nb201Op; 5] =
        [Nb201Op::None, Nb201Op::SkipConnect, Nb201Op::NorConv1x1, Nb201Op::NorConv3x3, Nb201Op::AvgPool3x3];

    /// The name used in NB201 arch strings.
    pub fn name(self) -> &'static str {
        match self {
            Nb201Op::None => "none",
            Nb201Op::SkipConnect => "skip_connect",
            Nb201Op::NorConv1x1 => "nor_conv_1x1",
            Nb201Op::NorConv3x3 => "nor_conv_3x3",
            Nb201Op::AvgPool3x3 => "avg_pool_3x3",
        }
    }

    /// Skip, pooling and `none`: the ops without weights that DARTS-style searches collapse to.
    pub fn parameter_free(self) -> bool {
        matches!(self, Nb201Op::None | Nb201Op::SkipConnect | Nb201Op::AvgPool3x3)
    }

    /// Position in [`Nb201Op::ALL`], 0..5.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Nb201Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An op name that is not one of the five NB201 ops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown op {name:?}; valid ops are {}", ValidOps)]
pub struct UnknownOpError {
    pub name: String,
}

impl FromStr for Nb201Op {
    type Err = UnknownOpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Nb201Op::ALL.into_iter().find(|op| op.name() == s).ok_or_else(|| UnknownOpError { name: s.to_owned() })
    }
}

/// Lists the op names for error messages, derived from [`Nb201Op::ALL`] so it cannot drift.
struct ValidOps;

impl fmt::Display for ValidOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, op) in Nb201Op::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(op.name())?;
        }
        Ok(())
    }
}

/// Why a string is not a valid NB201 arch. Nodes are numbered 1..=3 and an input position `p`
/// of node `n` must read `~p`, as in the benchmark's strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchParseError {
    #[error("expected 3 node groups separated by '+', found {found}")]
    WrongNodeCount { found: usize },
    #[error("node {node}: expected a group framed by '|' such as \"|op~0|\", found {group:?}")]
    BadFraming { node: usize, group: String },
    #[error("node {node} must list {expected} input(s), found {found}")]
    WrongInputCount { node: usize, expected: usize, found: usize },
    #[error("node {node} input {position}: missing '~' between op and input index in {entry:?}")]
    MissingTilde { node: usize, position: usize, entry: String },
    #[error("node {node} input {position}: unknown op {name:?}; valid ops are {}", ValidOps)]
    UnknownOp { node: usize, position: usize, name: String },
    #[error("node {node} input {position}: input index {text:?} is not a number")]
    BadInputIndex { node: usize, position: usize, text: String },
    #[error("node {node} input {position} names input {named} again; each input must appear once")]
    DuplicateInput { node: usize, position: usize, named: usize },
    #[error(
        "node {node} input {position} names input {named}; node {node} takes inputs ~0..~{last} in order",
        last = node - 1
    )]
    WrongInput { node: usize, position: usize, named: usize },
}

/// One NB201 cell: the op on each edge of [`EDGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arch {
    pub ops: [Nb201Op; 6],
}

impl Arch {
    /// Every cell, in code order (which is also `Ord` order).
    pub fn all() -> impl Iterator<Item = Arch> {
        (0..NUM_ARCHS).map(Arch::decode)
    }

    /// Base-5 number with `ops[0]` as the most significant digit, in `0..NUM_ARCHS`.
    pub fn to_code(&self) -> u32 {
        self.ops.iter().fold(0, |code, op| code * 5 + op.index() as u32)
    }

    /// Inverse of [`Arch::to_code`]; `None` when `code >= NUM_ARCHS`.
    pub fn from_code(code: u32) -> Option<Arch> {
        (code < NUM_ARCHS).then(|| Arch::decode(code))
    }

    /// Caller guarantees `code < NUM_ARCHS`; larger codes would silently drop high digits.
    fn decode(mut code: u32) -> Arch {
        let mut ops = [Nb201Op::None; 6];
        for op in ops.iter_mut().rev() {
            *op = Nb201Op::ALL[(code % 5) as usize];
            code /= 5;
        }
        Arch { ops }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (op, &(to, from)) in self.ops.iter().zip(EDGES.iter()) {
            // EDGES lists each node's inputs from 0 upwards, so input 0 opens the node's group.
            if from == 0 {
                f.write_str(if to == 1 { "|" } else { "+|" })?;
            }
            write!(f, "{op}~{from}|")?;
        }
        Ok(())
    }
}

impl FromStr for Arch {
    type Err = ArchParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let groups: Vec<&str> = s.trim().split('+').collect();
        if groups.len() != NODES {
            return Err(ArchParseError::WrongNodeCount { found: groups.len() });
        }
        let mut parsed = Vec::with_capacity(EDGES.len());
        for (node, group) in (1..).zip(groups) {
            let inner = group
                .strip_prefix('|')
                .and_then(|g| g.strip_suffix('|'))
                .ok_or_else(|| ArchParseError::BadFraming { node, group: group.to_owned() })?;
            let entries: Vec<&str> = inner.split('|').collect();
            if entries.len() != node {
                return Err(ArchParseError::WrongInputCount { node, expected: node, found: entries.len() });
            }
            for (position, entry) in entries.into_iter().enumerate() {
                let (name, index) = entry.split_once('~').ok_or_else(|| ArchParseError::MissingTilde {
                    node,
                    position,
                    entry: entry.to_owned(),
                })?;
                let op =
                    name.parse().map_err(|_| ArchParseError::UnknownOp { node, position, name: name.to_owned() })?;
                let named: usize = index.parse().map_err(|_| ArchParseError::BadInputIndex {
                    node,
                    position,
                    text: index.to_owned(),
                })?;
                // Inputs are checked in order, so an index below the position was already used.
                if named < position {
                    return Err(ArchParseError::DuplicateInput { node, position, named });
                }
                if named != position {
                    return Err(ArchParseError::WrongInput { node, position, named });
                }
                parsed.push(op);
            }
        }
        // Nodes 1..=3 were checked to list 1, 2 and 3 inputs, so `parsed` fills all six slots.
        let mut ops = [Nb201Op::None; 6];
        for (slot, op) in ops.iter_mut().zip(parsed) {
            *slot = op;
        }
        Ok(Arch { ops })
    }
}

impl Serialize for Arch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Arch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str =
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|";

    fn err(s: &str) -> ArchParseError {
        match s.parse::<Arch>() {
            Ok(arch) => panic!("{s:?} parsed as {arch}"),
            Err(e) => e,
        }
    }

    #[test]
    fn nb201_op_names_indices_and_serde_agree() {
        for (i, op) in Nb201Op::ALL.into_iter().enumerate() {
            assert_eq!(op.index(), i);
            assert_eq!(op.to_string(), op.name());
            assert_eq!(op.name().parse::<Nb201Op>(), Ok(op));
            let json = serde_json::to_string(&op).unwrap();
            assert_eq!(json, format!("\"{}\"", op.name()));
            assert_eq!(serde_json::from_str::<Nb201Op>(&json).unwrap(), op);
        }
        let e = "conv".parse::<Nb201Op>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown op \"conv\"; valid ops are none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"
        );
    }

    #[test]
    fn nb201_golden_string() {
        let arch: Arch = GOLDEN.parse().unwrap();
        use Nb201Op::*;
        assert_eq!(arch.ops, [AvgPool3x3, NorConv1x1, SkipConnect, NorConv1x1, SkipConnect, SkipConnect]);
        assert_eq!(arch.to_string(), GOLDEN);
        assert_eq!(format!("  {GOLDEN}\n").parse::<Arch>().unwrap(), arch);
        let json = serde_json::to_string(&arch).unwrap();
        assert_eq!(json, format!("\"{GOLDEN}\""));
        assert_eq!(serde_json::from_str::<Arch>(&json).unwrap(), arch);
        assert!(serde_json::from_str::<Arch>("\"|none~0|\"").is_err());
    }

    #[test]
    fn nb201_all_round_trip() {
        let all: Vec<Arch> = Arch::all().collect();
        assert_eq!(all.len(), NUM_ARCHS as usize);
        assert!(all.windows(2).all(|w| w[0] < w[1]), "code order is Ord order");
        for (code, arch) in (0..).zip(&all) {
            assert_eq!(arch.to_code(), code);
            assert_eq!(Arch::from_code(code), Some(*arch));
            assert_eq!(arch.to_string().parse::<Arch>(), Ok(*arch));
        }
        assert_eq!(Arch::from_code(NUM_ARCHS), None);
        assert_eq!(Arch::from_code(u32::MAX), None);
        assert_eq!(all[0].ops, [Nb201Op::None; 6]);
        assert_eq!(all[NUM_ARCHS as usize - 1].ops, [Nb201Op::AvgPool3x3; 6]);
    }

    #[test]
    fn nb201_parse_errors() {
        use ArchParseError::*;
        assert_eq!(err(""), WrongNodeCount { found: 1 });
        assert_eq!(err("|none~0|+|none~0|none~1|"), WrongNodeCount { found: 2 });
        assert_eq!(err("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|"), WrongNodeCount { found: 4 });
        assert_eq!(
            err("none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
            BadFraming { node: 1, group: "none~0|".into() }
        );
        assert_eq!(
            err("|none~0|+|none~0|none~1|+|none~0|none~1|none~2"),
            BadFraming { node: 3, group: "|none~0|none~1|none~2".into() }
        );
        assert_eq!(err("|none~0|+|+|none~0|none~1|none~2|"), BadFraming { node: 2, group: "|".into() });
        assert_eq!(err("|none~0|+|none~0|+|none~0|none~1|none~2|"), WrongInputCount { node: 2, expected: 2, found: 1 });
        assert_eq!(
            err("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|"),
            WrongInputCount { node: 3, expected: 3, found: 4 }
        );
        assert_eq!(
            err("|none~0|+|none~0|none1|+|none~0|none~1|none~2|"),
            MissingTilde { node: 2, position: 1, entry: "none1".into() }
        );
        assert_eq!(
            err("|none~0|+|none~0|none~1|+|none~0|conv_3x3~1|none~2|"),
            UnknownOp { node: 3, position: 1, name: "conv_3x3".into() }
        );
        assert_eq!(
            err("|none~x|+|none~0|none~1|+|none~0|none~1|none~2|"),
            BadInputIndex { node: 1, position: 0, text: "x".into() }
        );
        assert_eq!(
            err("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|"),
            DuplicateInput { node: 2, position: 1, named: 0 }
        );
        assert_eq!(
            err("|none~0|+|none~0|none~3|+|none~0|none~1|none~2|"),
            WrongInput { node: 2, position: 1, named: 3 }
        );
        assert_eq!(
            err("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"),
            WrongInput { node: 1, position: 0, named: 1 }
        );
    }

    #[test]
    fn nb201_parse_error_messages() {
        let msg = |s: &str| err(s).to_string();
        assert_eq!(msg("|none~0|+|none~0|none~1|"), "expected 3 node groups separated by '+', found 2");
        assert_eq!(
            msg("|none~0|+|none~0|none~3|+|none~0|none~1|none~2|"),
            "node 2 input 1 names input 3; node 2 takes inputs ~0..~1 in order"
        );
        assert_eq!(
            msg("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|"),
            "node 2 input 1 names input 0 again; each input must appear once"
        );
        assert_eq!(
            msg("|none~0|+|none~0|none~1|+|none~0|conv~1|none~2|"),
            "node 3 input 1: unknown op \"conv\"; valid ops are none, skip_connect, \
             nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"
        );
        assert_eq!(
            msg("|none~0|+|none~0|none1|+|none~0|none~1|none~2|"),
            "node 2 input 1: missing '~' between op and input index in \"none1\""
        );
        assert_eq!(msg("|none~0|+|none~0|+|none~0|none~1|none~2|"), "node 2 must list 2 input(s), found 1");
        assert_eq!(
            msg("none~0+|none~0|none~1|+|none~0|none~1|none~2|"),
            "node 1: expected a group framed by '|' such as \"|op~0|\", found \"none~0\""
        );
        assert_eq!(
            msg("|none~-1|+|none~0|none~1|+|none~0|none~1|none~2|"),
            "node 1 input 0: input index \"-1\" is not a number"
        );
    }
}
