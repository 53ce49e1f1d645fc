//! NAS-Bench-201: 6-edge cell, 5 ops, one genotype shared by all 15 cells; results looked up in the benchmark.
pub mod arch;
pub mod bench;
pub mod derive;
pub mod network;
pub mod supernet;

pub use arch::{Arch, Nb201Op, EDGES};
pub use derive::{Aggregation, DeriveConfig};
pub use network::{Nb201Network, Nb201NetworkConfig};
pub use supernet::{Nb201Config, Nb201Supernet};

use super::{tensor_to_nested, Derived, SearchSpace, Supernet, SupernetOutput};
use anyhow::{Context, Result};
use tch::{nn, Tensor};

/// The NB201 space as the search loop sees it.
pub struct Nb201Space {
    pub supernet: Nb201Config,
    pub derive: DeriveConfig,
}

impl Supernet for Nb201Supernet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> SupernetOutput {
        Nb201Supernet::forward_t(self, xs, train)
    }
}

fn nested_f64(importance: &Tensor) -> Result<Vec<Vec<Vec<f64>>>> {
    serde_json::from_value(tensor_to_nested(importance)?).context("importance tensor must be (cells, 6, 5)")
}

/// Each edge's scores as shares of the edge's total, the chosen op in bold.
fn scores_table(scores: &[Vec<f64>], arch: &Arch) -> String {
    let mut s = String::from("Held-out attention per edge (share of the edge's total, %):\n\n| edge |");
    for op in Nb201Op::ALL {
        s.push_str(&format!(" {op} |"));
    }
    s.push_str(&format!("\n|---|{}\n", "---:|".repeat(Nb201Op::ALL.len())));
    for (((to, from), row), chosen) in EDGES.iter().zip(scores).zip(arch.ops) {
        let total: f64 = row.iter().sum();
        s.push_str(&format!("| {to}<-{from} |"));
        for (op, v) in Nb201Op::ALL.iter().zip(row) {
            let share = 100.0 * v / total;
            s.push_str(&if *op == chosen { format!(" **{share:.2}** |") } else { format!(" {share:.2} |") });
        }
        s.push('\n');
    }
    s
}

impl SearchSpace for Nb201Space {
    fn name(&self) -> &'static str {
        "nb201"
    }

    fn build(&self, p: &nn::Path, in_channels: i64, num_classes: i64) -> Box<dyn Supernet> {
        Box::new(Nb201Supernet::new(p, &self.supernet, in_channels, num_classes))
    }

    fn describe_importance(&self, importance: &Tensor) -> Result<serde_json::Value> {
        let edges: Vec<String> = EDGES.iter().map(|(to, from)| format!("{to}<-{from}")).collect();
        let ops: Vec<&str> = Nb201Op::ALL.iter().map(|o| o.name()).collect();
        Ok(serde_json::json!({
            "axes": ["cell", "edge", "op"],
            "cell_channels": self.supernet.search_cell_channels(),
            "edges": edges,
            "ops": ops,
            "values": tensor_to_nested(importance)?,
        }))
    }

    fn derive(&self, importance: &Tensor) -> Result<Derived> {
        let channels = self.supernet.search_cell_channels();
        let values = nested_f64(importance)?;
        let scores = derive::edge_scores(&values, &channels, &self.derive)?;
        let arch = derive::derive(&values, &channels, &self.derive)?;
        let record = bench::table().by_arch(&arch);
        Ok(Derived {
            name: arch.to_string(),
            genotype: serde_json::json!({
                "space": "nb201",
                "arch": arch.to_string(),
                "edge_scores": scores,
                "aggregation": self.derive.aggregation,
                "allow_none": self.derive.allow_none,
            }),
            result: serde_json::json!({ "bench201": record }),
            details_md: scores_table(&scores, &arch),
            files: Vec::new(),
        })
    }
}
