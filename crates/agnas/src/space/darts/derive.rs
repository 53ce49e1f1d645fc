//! From accumulated attention to one genotype per supernet cell (spec §1.5, the DARTS rule).
use super::genotype::{CellGenotype, DartsOp};
use anyhow::{ensure, Result};

/// The genotype of one cell from its (edges, 8) importances: for every node the two input edges whose best
/// non-`none` op is strongest, each with that op. Ties keep the earlier edge and the earlier op, as Python's
/// stable `sorted` and the first-maximum loop of DARTS' `_parse` do; pairs are listed strongest first.
pub fn derive_cell(importance: &[Vec<f64>], steps: usize) -> Result<CellGenotype> {
    let edges: usize = (0..steps).map(|i| i + 2).sum();
    ensure!(importance.len() == edges, "a cell has {} edges of importances, expected {edges}", importance.len());
    let best = |row: &[f64]| -> Result<(DartsOp, f64)> {
        ensure!(row.len() == DartsOp::ALL.len(), "an edge has {} ops, expected {}", row.len(), DartsOp::ALL.len());
        let mut best: Option<(DartsOp, f64)> = None;
        for (&op, &v) in DartsOp::ALL.iter().zip(row) {
            ensure!(v.is_finite(), "importance of {op} is {v}");
            if op != DartsOp::None && best.is_none_or(|(_, b)| v > b) {
                best = Some((op, v));
            }
        }
        Ok(best.expect("seven ops besides none"))
    };
    let mut ops = Vec::with_capacity(2 * steps);
    let mut start = 0;
    for node in 0..steps {
        let inputs = node + 2;
        let mut candidates: Vec<(usize, DartsOp, f64)> =
            (0..inputs).map(|j| best(&importance[start + j]).map(|(op, s)| (j, op, s))).collect::<Result<_>>()?;
        candidates.sort_by(|a, b| b.2.total_cmp(&a.2));
        ops.extend(candidates.iter().take(2).map(|&(j, op, _)| (op, j)));
        start += inputs;
    }
    Ok(CellGenotype { ops, concat: (2..steps + 2).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: [f64; 8]) -> Vec<f64> {
        values.to_vec()
    }

    #[test]
    fn top_two_edges_by_best_non_none_op() {
        let mut imp = vec![row([1.0; 8]); 14];
        // Node 0: edge 1 is stronger (dil_conv_5x5 at 5), `none` (9) never counts.
        imp[0] = row([2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0]);
        imp[1] = row([1.0, 1.0, 1.0, 5.0, 1.0, 1.0, 1.0, 1.0]);
        // Node 1 (edges 2..5): inputs 2 (skip 4) and 0 (max_pool 3); input 1 has only ties at 1 → loses.
        imp[2] = row([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 1.0]);
        imp[4] = row([1.0, 1.0, 1.0, 1.0, 4.0, 1.0, 1.0, 1.0]);
        let cell = derive_cell(&imp, 4).unwrap();
        assert_eq!(&cell.ops[0..2], &[(DartsOp::DilConv5x5, 1), (DartsOp::SepConv3x3, 0)]);
        assert_eq!(&cell.ops[2..4], &[(DartsOp::SkipConnect, 2), (DartsOp::MaxPool3x3, 0)]);
        // Node 2: all equal → the first two edges, the first op.
        assert_eq!(&cell.ops[4..6], &[(DartsOp::SepConv3x3, 0), (DartsOp::SepConv3x3, 1)]);
        assert_eq!(cell.concat, vec![2, 3, 4, 5]);
        cell.validate().unwrap();
    }

    #[test]
    fn wrong_shapes_and_nan_are_errors() {
        assert!(derive_cell(&vec![row([1.0; 8]); 13], 4).is_err());
        let mut imp = vec![row([1.0; 8]); 14];
        imp[3][2] = f64::NAN;
        assert!(derive_cell(&imp, 4).unwrap_err().to_string().contains("dil_conv_3x3"));
    }
}
