//! From accumulated attention to one genotype per supernet cell (spec §1.5, the DARTS rule).
use super::genotype::{CellGenotype, DartsOp};
use crate::error::{ensure, Result};
use crate::space::confidence::{lead, Decision};

/// One input edge of a node: its strongest op (other than `none` unless allowed) and the runner-up op.
struct Input {
    from: usize,
    op: DartsOp,
    strength: f64,
    runner_up: DartsOp,
    /// The op's lead over the runner-up, in points of the edge's total over the ops that may win.
    margin: f64,
    /// The importances of the ops that may win, in op order.
    scores: Vec<f64>,
}

/// Every node's input edges, strongest first (ties keep the earlier edge and the earlier op, as Python's stable
/// `sorted` and the first-maximum loop of DARTS' `_parse` do).
fn ranked_inputs(importance: &[Vec<f64>], steps: usize, allow_none: bool) -> Result<Vec<Vec<Input>>> {
    let edges: usize = (0..steps).map(|i| i + 2).sum();
    ensure!(importance.len() == edges, "a cell has {} edges of importances, expected {edges}", importance.len());
    let input = |from: usize, row: &[f64]| -> Result<Input> {
        ensure!(row.len() == DartsOp::ALL.len(), "an edge has {} ops, expected {}", row.len(), DartsOp::ALL.len());
        for (op, v) in DartsOp::ALL.iter().zip(row) {
            ensure!(v.is_finite(), "importance of {op} is {v}");
        }
        let ops: Vec<(usize, f64)> =
            row.iter().copied().enumerate().filter(|&(k, _)| allow_none || DartsOp::ALL[k] != DartsOp::None).collect();
        let total = ops.iter().map(|(_, v)| v).sum();
        let (best, second, margin) = lead(ops.iter().copied(), total).expect("seven ops besides none");
        Ok(Input {
            from,
            op: DartsOp::ALL[best],
            strength: row[best],
            runner_up: DartsOp::ALL[second],
            margin,
            scores: ops.iter().map(|(_, v)| *v).collect(),
        })
    };
    let mut nodes = Vec::with_capacity(steps);
    let mut start = 0;
    for node in 0..steps {
        let inputs = node + 2;
        let mut ranked: Vec<Input> = (0..inputs).map(|j| input(j, &importance[start + j])).collect::<Result<_>>()?;
        ranked.sort_by(|a, b| b.strength.total_cmp(&a.strength));
        nodes.push(ranked);
        start += inputs;
    }
    Ok(nodes)
}

/// A node's importances of the ops that may win, edge by edge in input order (the same order in every pass).
fn in_edge_order(ranked: &[Input]) -> Vec<f64> {
    let mut inputs: Vec<&Input> = ranked.iter().collect();
    inputs.sort_by_key(|i| i.from);
    inputs.iter().flat_map(|i| i.scores.iter().copied()).collect()
}

/// The genotype of one cell from its (edges, 8) importances: for every node the two input edges whose best op
/// (other than `none` unless `allow_none`) is strongest, each with that op; pairs are listed strongest first.
pub fn derive_cell(importance: &[Vec<f64>], steps: usize, allow_none: bool) -> Result<CellGenotype> {
    let nodes = ranked_inputs(importance, steps, allow_none)?;
    let ops = nodes.iter().flat_map(|ranked| ranked.iter().take(2).map(|i| (i.op, i.from))).collect();
    Ok(CellGenotype { ops, concat: (2..steps + 2).collect() })
}

/// The decisions of [`derive_cell`], one per node: its two (op, input) pairs, written in input order, since the
/// node is their sum whichever is stronger (a resample that only swaps the two makes the same network). The margin is
/// the smallest of the node's leads: the second input's over the third (in points of the node's summed input
/// strengths; node 0 has only two inputs) and each chosen op's over its edge's runner-up op (in points of the edge's
/// total over the ops that may win).
pub fn cell_decisions(importance: &[Vec<f64>], steps: usize, allow_none: bool, cell: &str) -> Result<Vec<Decision>> {
    let pair = |op: DartsOp, from: usize| format!("{op}~{from}");
    let nodes = ranked_inputs(importance, steps, allow_none)?;
    Ok(nodes
        .iter()
        .enumerate()
        .map(|(node, ranked)| {
            let chosen = &ranked[..2];
            let mut pairs: Vec<&Input> = chosen.iter().collect();
            pairs.sort_by_key(|i| i.from);
            let mut leads: Vec<(f64, String)> = chosen.iter().map(|i| (i.margin, pair(i.runner_up, i.from))).collect();
            if let Some(third) = ranked.get(2) {
                let strengths: f64 = ranked.iter().map(|i| i.strength).sum();
                leads.push((100.0 * (chosen[1].strength - third.strength) / strengths, pair(third.op, third.from)));
            }
            let (margin, runner_up) = leads.into_iter().min_by(|a, b| a.0.total_cmp(&b.0)).expect("two inputs");
            let free = chosen.iter().filter(|i| i.op.parameter_free()).count();
            Decision {
                point: format!("{cell} node {}", node + 2),
                choice: pairs.iter().map(|i| pair(i.op, i.from)).collect::<Vec<_>>().join(","),
                runner_up,
                margin,
                ops: 2,
                parameter_free: free,
                scores: in_edge_order(ranked),
            }
        })
        .collect())
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
        let cell = derive_cell(&imp, 4, false).unwrap();
        assert_eq!(&cell.ops[0..2], &[(DartsOp::DilConv5x5, 1), (DartsOp::SepConv3x3, 0)]);
        assert_eq!(&cell.ops[2..4], &[(DartsOp::SkipConnect, 2), (DartsOp::MaxPool3x3, 0)]);
        // Node 2: all equal → the first two edges, the first op.
        assert_eq!(&cell.ops[4..6], &[(DartsOp::SepConv3x3, 0), (DartsOp::SepConv3x3, 1)]);
        assert_eq!(cell.concat, vec![2, 3, 4, 5]);
        cell.validate().unwrap();
    }

    #[test]
    fn a_node_is_the_same_decision_whichever_of_its_inputs_is_stronger() {
        let mut imp = vec![row([1.0; 8]); 14];
        imp[0] = row([1.0, 1.0, 1.0, 1.0, 4.0, 1.0, 1.0, 1.0]);
        imp[1] = row([1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(
            derive_cell(&imp, 4, false).unwrap().ops[0..2],
            [(DartsOp::SkipConnect, 0), (DartsOp::DilConv5x5, 1)]
        );
        let before = cell_decisions(&imp, 4, false, "normal").unwrap();
        imp[1][3] = 5.0;
        assert_eq!(
            derive_cell(&imp, 4, false).unwrap().ops[0..2],
            [(DartsOp::DilConv5x5, 1), (DartsOp::SkipConnect, 0)]
        );
        let after = cell_decisions(&imp, 4, false, "normal").unwrap();
        assert_eq!(before[0].choice, "skip_connect~0,dil_conv_5x5~1");
        assert_eq!(after[0].choice, before[0].choice);
    }

    #[test]
    fn none_wins_an_input_only_when_allowed() {
        let mut imp = vec![row([1.0; 8]); 14];
        imp[0] = row([2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0]);
        imp[1] = row([1.0, 1.0, 1.0, 5.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(
            derive_cell(&imp, 4, false).unwrap().ops[0..2],
            [(DartsOp::DilConv5x5, 1), (DartsOp::SepConv3x3, 0)]
        );
        assert_eq!(derive_cell(&imp, 4, true).unwrap().ops[0..2], [(DartsOp::None, 0), (DartsOp::DilConv5x5, 1)]);
        let with_none = cell_decisions(&imp, 4, true, "normal").unwrap();
        assert_eq!(with_none[0].choice, "none~0,dil_conv_5x5~1");
        assert_eq!((with_none[0].parameter_free, with_none[0].scores.len()), (1, 16));
        assert_eq!(cell_decisions(&imp, 4, false, "normal").unwrap()[0].scores.len(), 14);
    }

    #[test]
    fn wrong_shapes_and_nan_are_errors() {
        assert!(derive_cell(&vec![row([1.0; 8]); 13], 4, false).is_err());
        let mut imp = vec![row([1.0; 8]); 14];
        imp[3][2] = f64::NAN;
        assert!(derive_cell(&imp, 4, false).unwrap_err().to_string().contains("dil_conv_3x3"));
    }
}
