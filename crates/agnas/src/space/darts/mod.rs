//! The DARTS space (spec §2.1): 14-edge cells with 8 candidate ops; one genotype per supernet cell.
pub mod derive;
pub mod genotype;
pub mod network;
pub mod plot;
pub mod python;
pub mod supernet;

pub use genotype::{CellGenotype, CellKind, DartsOp, Genotype};
pub use network::{NetworkCifar, NetworkConfig};
pub use supernet::{DartsConfig, DartsSupernet};

use super::{tensor_to_nested, Derived, SearchSpace, Supernet, SupernetOutput};
use crate::nn::ops::{DilConv, FactorizedReduce, Identity, Pool, PoolKind, SepConv, Zero};
use anyhow::{Context, Result};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// One op as the DARTS code base builds it (`OPS[name](C, stride, affine)`); a strided skip is a FactorizedReduce.
fn op(p: nn::Path, o: DartsOp, c: i64, stride: i64, affine: bool) -> Box<dyn ModuleT> {
    match o {
        DartsOp::SepConv3x3 => Box::new(SepConv::new(p, c, c, 3, stride, affine)),
        DartsOp::SepConv5x5 => Box::new(SepConv::new(p, c, c, 5, stride, affine)),
        DartsOp::DilConv3x3 => Box::new(DilConv::new(p, c, c, 3, stride, 2, affine)),
        DartsOp::DilConv5x5 => Box::new(DilConv::new(p, c, c, 5, stride, 2, affine)),
        DartsOp::SkipConnect if stride == 1 => Box::new(Identity),
        DartsOp::SkipConnect => Box::new(FactorizedReduce::new(p, c, c, affine)),
        DartsOp::AvgPool3x3 => Box::new(Pool { kind: PoolKind::Avg, stride }),
        DartsOp::MaxPool3x3 => Box::new(Pool { kind: PoolKind::Max, stride }),
        DartsOp::None => Box::new(Zero { stride }),
    }
}

impl Supernet for DartsSupernet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> SupernetOutput {
        DartsSupernet::forward_t(self, xs, train)
    }
}

/// The DARTS space as the search loop sees it.
pub struct DartsSpace {
    pub supernet: DartsConfig,
}

/// The states a cell's edges read, in `_ops` order: `2<-0` is node 2 (the first intermediate node) from c_{k-2}.
pub fn edge_labels(steps: usize) -> Vec<String> {
    (0..steps).flat_map(|i| (0..i + 2).map(move |j| format!("{}<-{j}", i + 2))).collect()
}

/// Edge labels for pictures, nodes counted from 0 as in the DARTS figures: `1←c_{k-2}`, `2←0`.
pub fn node_edge_labels(steps: usize) -> Vec<String> {
    let input = |j: usize| match j {
        0 => "c_{k-2}".to_string(),
        1 => "c_{k-1}".to_string(),
        j => (j - 2).to_string(),
    };
    (0..steps).flat_map(|i| (0..i + 2).map(move |j| format!("{i}←{}", input(j)))).collect()
}

/// `Cell_<i>` as the official code logs the per-cell genotypes.
fn cell_name(i: usize) -> String {
    format!("Cell_{i}")
}

/// One line per cell: `op~input` pairs of a node joined by `,`, nodes by `+`.
fn cell_string(cell: &CellGenotype) -> String {
    cell.ops
        .chunks(2)
        .map(|p| p.iter().map(|(o, i)| format!("{o}~{i}")).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join("+")
}

impl DartsSpace {
    /// The supernet cells that become the evaluation network's five stage slots: the first cell of each stage and
    /// both reductions, as the released AGNAS genotype takes Cell_0, Cell_2, Cell_3, Cell_5 and Cell_6 of eight.
    pub fn stage_cells(&self) -> [usize; 5] {
        let l = self.supernet.layers;
        let (r1, r2) = (l / 3, 2 * l / 3);
        [0, r1, r1 + 1, r2, r2 + 1]
    }
}

impl SearchSpace for DartsSpace {
    fn name(&self) -> &'static str {
        "darts"
    }

    fn build(&self, p: &nn::Path, in_channels: i64, num_classes: i64) -> Box<dyn Supernet> {
        Box::new(DartsSupernet::new(p, &self.supernet, in_channels, num_classes))
    }

    fn describe_importance(&self, importance: &Tensor) -> Result<serde_json::Value> {
        let cells: Vec<serde_json::Value> = self
            .supernet
            .cells()
            .iter()
            .enumerate()
            .map(|(i, (kind, c))| serde_json::json!({ "name": cell_name(i), "kind": kind, "channels": c }))
            .collect();
        let ops: Vec<&str> = DartsOp::ALL.iter().map(|o| o.name()).collect();
        Ok(serde_json::json!({
            "axes": ["cell", "edge", "op"],
            "cells": cells,
            "edges": edge_labels(self.supernet.steps),
            "ops": ops,
            "values": tensor_to_nested(importance)?,
        }))
    }

    fn derive(&self, importance: &Tensor) -> Result<Derived> {
        let values: Vec<Vec<Vec<f64>>> = serde_json::from_value(tensor_to_nested(importance)?)
            .context("importance tensor must be (cells, edges, 8)")?;
        let kinds = self.supernet.cells();
        anyhow::ensure!(
            values.len() == kinds.len(),
            "importances cover {} cells, the supernet has {}",
            values.len(),
            kinds.len()
        );
        let cells: Vec<CellGenotype> = values
            .iter()
            .enumerate()
            .map(|(i, v)| derive::derive_cell(v, self.supernet.steps).with_context(|| cell_name(i)))
            .collect::<Result<_>>()?;
        let stages = self.stage_cells();
        let genotype = Genotype::Stages { cells: stages.iter().map(|&i| cells[i].clone()).collect() };
        genotype.validate()?;
        let per_cell: Vec<serde_json::Value> = cells
            .iter()
            .zip(&kinds)
            .enumerate()
            .map(|(i, (cell, (kind, c)))| {
                serde_json::json!({ "name": cell_name(i), "kind": kind, "channels": c, "ops": cell.ops, "concat": cell.concat })
            })
            .collect();
        let mut details = String::from(
            "Per-cell genotypes (top-2 edges per node by the held-out attention; pictures in `cell_<i>.svg`, \
             importances in `importance.svg`, Python text in `genotype.py`):\n\n\
             | cell | kind | C | stage slot | genotype |\n|---|---|---|---|---|\n",
        );
        for (i, (cell, (kind, c))) in cells.iter().zip(&kinds).enumerate() {
            let slot = stages.iter().position(|&s| s == i).map_or(String::from("–"), |s| s.to_string());
            details.push_str(&format!("| {} | {kind:?} | {c} | {slot} | `{}` |\n", cell_name(i), cell_string(cell)));
        }
        let name = stages.iter().map(|&i| cell_string(&cells[i])).collect::<Vec<_>>().join(" / ");
        let titles: Vec<String> =
            kinds.iter().enumerate().map(|(i, (kind, c))| format!("{} ({kind:?}, C={c})", cell_name(i))).collect();
        let mut files = vec![(
            "genotype.py".to_string(),
            python::cells_to_python(
                &kinds.iter().map(|(k, _)| *k).zip(cells.iter().cloned()).collect::<Vec<_>>(),
                &stages,
                "AGNAS",
            )
            .into_bytes(),
        )];
        for (i, (cell, (kind, _))) in cells.iter().zip(&kinds).enumerate() {
            files.push((format!("cell_{i}.svg"), plot::cell_svg(cell, *kind, &titles[i]).into_bytes()));
        }
        let ops: Vec<&str> = DartsOp::ALL.iter().map(|o| o.name()).collect();
        let heatmap = plot::importance_heatmap_svg(
            &values,
            &titles,
            &node_edge_labels(self.supernet.steps),
            &ops,
            "Held-out attention per edge (AGNAS importances)",
        );
        files.push(("importance.svg".to_string(), heatmap.into_bytes()));
        Ok(Derived {
            name,
            genotype: serde_json::json!({
                "space": "darts",
                "genotype": genotype,
                "stage_cells": stages.iter().map(|&i| cell_name(i)).collect::<Vec<_>>(),
                "cells": per_cell,
            }),
            result: serde_json::json!({}),
            details_md: details,
            files,
        })
    }
}
