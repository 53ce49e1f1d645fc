//! From accumulated attention to an NB201 architecture (spec §2.2, our proposal: the paper gives no rule).
use super::arch::{Arch, Nb201Op, EDGES};
use crate::error::{ensure, Result};
use crate::space::confidence::{lead, Decision};
use serde::{Deserialize, Serialize};

/// How the 15 cells' importances become one cell genotype.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "kebab-case")]
pub enum Aggregation {
    /// Σ over all search cells of importance / cell channels, so that every stage weighs the same.
    #[default]
    AllCells,
    /// The first stage's cells only (an ablation: the genotype the C-channel stage alone would pick).
    FirstStage,
}

/// Derivation options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeriveConfig {
    pub aggregation: Aggregation,
    /// Whether `none` may win an edge. Off by default: `none` outputs zeros, so no loss gradient reaches its gates;
    /// they stay near where they started and act as a fixed threshold that the trained gates of real operations fall
    /// below (it won one to three edges in most searches, about 2 points of CIFAR-10 accuracy; BENCHMARKS.md). The
    /// official DARTS-space derivation skips it too. NB201's reference derivations take the argmax over all five ops.
    pub allow_none: bool,
}

impl Default for DeriveConfig {
    fn default() -> Self {
        DeriveConfig { aggregation: Aggregation::AllCells, allow_none: false }
    }
}

/// Per-edge scores: `importance[cell][edge][op]` summed over the selected cells after dividing by their channels.
pub fn edge_scores(importance: &[Vec<Vec<f64>>], cell_channels: &[i64], cfg: &DeriveConfig) -> Result<Vec<Vec<f64>>> {
    ensure!(
        importance.len() == cell_channels.len(),
        "importances cover {} cells but the supernet has {}",
        importance.len(),
        cell_channels.len()
    );
    let first = cell_channels.first().copied().unwrap_or_default();
    let mut scores = vec![vec![0.0; Nb201Op::ALL.len()]; EDGES.len()];
    for (cell, &c) in importance.iter().zip(cell_channels) {
        if cfg.aggregation == Aggregation::FirstStage && c != first {
            continue;
        }
        ensure!(cell.len() == EDGES.len(), "a cell has {} edges, expected {}", cell.len(), EDGES.len());
        for (acc, edge) in scores.iter_mut().zip(cell) {
            ensure!(edge.len() == Nb201Op::ALL.len(), "an edge has {} ops, expected 5", edge.len());
            for (a, v) in acc.iter_mut().zip(edge) {
                *a += v / c as f64;
            }
        }
    }
    Ok(scores)
}

/// The architecture: per edge the op of largest score (first maximum wins, as numpy's argmax).
pub fn derive(importance: &[Vec<Vec<f64>>], cell_channels: &[i64], cfg: &DeriveConfig) -> Result<Arch> {
    pick(&edge_scores(importance, cell_channels, cfg)?, cfg.allow_none)
}

/// The architecture from `edge_scores`' scores: per edge the op of largest score, `none` only if `allow_none`.
pub fn pick(scores: &[Vec<f64>], allow_none: bool) -> Result<Arch> {
    let mut ops = [Nb201Op::None; 6];
    for (slot, edge) in ops.iter_mut().zip(scores) {
        let mut best: Option<(usize, f64)> = None;
        for (k, &v) in edge.iter().enumerate() {
            ensure!(v.is_finite(), "importance is not finite ({v})");
            if !allow_none && Nb201Op::ALL[k] == Nb201Op::None {
                continue;
            }
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((k, v));
            }
        }
        *slot = Nb201Op::ALL[best.expect("at least four candidate ops").0];
    }
    Ok(Arch { ops })
}

/// The decisions of [`pick`]: per edge the op, against the strongest other op it may pick (margins in points of
/// the edge's total over all five ops, as `summary.md` shows the shares).
pub fn decisions(scores: &[Vec<f64>], allow_none: bool) -> Result<Vec<Decision>> {
    let arch = pick(scores, allow_none)?;
    let allowed = |k: &usize| allow_none || Nb201Op::ALL[*k] != Nb201Op::None;
    Ok(EDGES
        .iter()
        .zip(scores)
        .zip(arch.ops)
        .map(|((&(to, from), row), op)| {
            let total: f64 = row.iter().sum();
            let candidates = row.iter().copied().enumerate().filter(|(k, _)| allowed(k));
            let (_, runner_up, margin) = lead(candidates, total).expect("at least four ops");
            Decision {
                point: format!("edge {to}<-{from}"),
                choice: op.name().to_string(),
                runner_up: Nb201Op::ALL[runner_up].name().to_string(),
                margin,
                ops: 1,
                parameter_free: usize::from(op.parameter_free()),
                scores: row.iter().enumerate().filter(|(k, _)| allowed(k)).map(|(_, v)| *v).collect(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(winner: usize, strength: f64) -> Vec<Vec<f64>> {
        (0..6).map(|_| (0..5).map(|k| if k == winner { strength } else { 1.0 }).collect()).collect()
    }

    #[test]
    fn argmax_per_edge_over_channel_normalised_cells() {
        // Stage 1 (C=16) prefers op 3 by a margin of 2; stage 3 (C=64) prefers op 2 by a raw margin of 4,
        // which is only 4/64 after normalisation against 2/16: op 3 must win.
        let imp = vec![cell(3, 3.0), cell(2, 5.0)];
        let arch = derive(&imp, &[16, 64], &DeriveConfig::default()).unwrap();
        assert!(arch.ops.iter().all(|&o| o == Nb201Op::NorConv3x3), "{arch}");
        // The first stage alone decides under `FirstStage`, however strong the last stage is.
        let imp = vec![cell(4, 1.5), cell(2, 50.0)];
        let first = DeriveConfig { aggregation: Aggregation::FirstStage, ..Default::default() };
        let arch = derive(&imp, &[16, 64], &first).unwrap();
        assert!(arch.ops.iter().all(|&o| o == Nb201Op::AvgPool3x3), "{arch}");
        let arch = derive(&imp, &[16, 64], &DeriveConfig::default()).unwrap();
        assert!(arch.ops.iter().all(|&o| o == Nb201Op::NorConv1x1), "{arch}");
    }

    #[test]
    fn none_wins_only_when_allowed() {
        let imp = vec![cell(0, 5.0)];
        // All others tie at 1.0: the first non-none op wins.
        assert_eq!(derive(&imp, &[16], &DeriveConfig::default()).unwrap().ops[0], Nb201Op::SkipConnect);
        let with_none = DeriveConfig { allow_none: true, ..Default::default() };
        assert_eq!(derive(&imp, &[16], &with_none).unwrap().ops[0], Nb201Op::None);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        assert!(derive(&[cell(0, 1.0)], &[16, 32], &DeriveConfig::default()).is_err());
        assert!(derive(&[vec![vec![1.0; 5]; 5]], &[16], &DeriveConfig::default()).is_err());
        assert!(derive(&[cell(1, f64::NAN)], &[16], &DeriveConfig::default()).is_err());
    }
}
