//! Reading a macro architecture off the held-out importances: per layer the candidate with the largest summed
//! attention (first maximum wins, as the official `export_op.py`), priced by the cost model.
use super::arch::{self, Arch, LAYERS, MAX_CANDIDATES};
use super::cost::{CostModel, FlopsRule};
use super::supernet::ProxylessConfig;
use crate::space::{Derived, Importances};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// `[derive]` of the macro space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxylessDeriveConfig {
    /// Input side the reported FLOPs are for (the deployment's, whatever the search ran at).
    pub cost_image_size: i64,
    /// Classes the reported FLOPs are for.
    pub cost_num_classes: i64,
    pub flops_rule: FlopsRule,
}

impl Default for ProxylessDeriveConfig {
    fn default() -> Self {
        ProxylessDeriveConfig { cost_image_size: 224, cost_num_classes: 1000, flops_rule: FlopsRule::Table }
    }
}

impl ProxylessDeriveConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.cost_image_size >= 32, "derive.cost_image_size must be at least 32");
        ensure!(self.cost_num_classes >= 1, "derive.cost_num_classes must be at least 1");
        Ok(())
    }
}

/// Which (layer, candidate slot) exist: the identity only on layers that keep shape.
pub fn mask() -> Vec<bool> {
    (0..LAYERS).flat_map(|l| (0..MAX_CANDIDATES).map(move |k| k < arch::MBCONVS || arch::skippable(l))).collect()
}

/// Each layer's importances of the candidates it has, in slot order.
pub fn layer_rows(importances: &Importances) -> Result<Vec<Vec<f64>>> {
    ensure!(
        importances.shape == [LAYERS, MAX_CANDIDATES],
        "macro importances of shape {:?}, expected [{LAYERS}, {MAX_CANDIDATES}]",
        importances.shape
    );
    Ok(importances
        .values
        .chunks(MAX_CANDIDATES)
        .enumerate()
        .map(|(l, row)| row[..if arch::skippable(l) { MAX_CANDIDATES } else { arch::MBCONVS }].to_vec())
        .collect())
}

/// The first maximum of each row (the official `np.argmax`).
pub fn argmax(rows: &[Vec<f64>]) -> Vec<usize> {
    rows.iter()
        .map(|row| row.iter().enumerate().fold(0, |best, (k, &v)| if v > row[best] { k } else { best }))
        .collect()
}

/// Each layer's shares of its total attention (%), the chosen one in bold.
fn shares_table(rows: &[Vec<f64>], chosen: &[usize]) -> String {
    let labels: Vec<String> = (0..MAX_CANDIDATES).map(arch::candidate_label).collect();
    let mut s = format!(
        "Held-out attention per layer (share of the layer's total, %):\n\n| layer | {} |\n",
        labels.join(" | ")
    );
    s.push_str(&format!("|---|{}\n", "---:|".repeat(MAX_CANDIDATES)));
    for (l, (row, &c)) in rows.iter().zip(chosen).enumerate() {
        let total: f64 = row.iter().sum();
        let cells: Vec<String> = (0..MAX_CANDIDATES)
            .map(|k| match row.get(k) {
                Some(v) if k == c => format!("**{:.2}**", 100.0 * v / total),
                Some(v) => format!("{:.2}", 100.0 * v / total),
                None => "–".into(),
            })
            .collect();
        s.push_str(&format!("| {l} | {} |\n", cells.join(" | ")));
    }
    s
}

/// The architecture and what the run folder says of it (its pictures are the space's to add).
pub fn derive(_: &ProxylessConfig, cfg: &ProxylessDeriveConfig, importances: &Importances) -> Result<(Arch, Derived)> {
    let rows = layer_rows(importances)?;
    let chosen = argmax(&rows);
    let arch = Arch::from_slots(&chosen)?;
    let costs = CostModel::new(1.0, cfg.cost_image_size, cfg.cost_num_classes);
    let flops = costs.arch(&arch, cfg.flops_rule);
    let report = vec![format!(
        "{:.2} M FLOPs at width 1, {} px, {} classes ({})",
        flops as f64 / 1e6,
        cfg.cost_image_size,
        cfg.cost_num_classes,
        cfg.flops_rule.describe()
    )];
    let derived = Derived {
        name: arch.to_string(),
        genotype: serde_json::json!({
            "space": "proxyless",
            "arch": arch,
            "ids": arch.ids(),
            "blocks": arch.slots().map(arch::candidate_label),
            "selection": "argmax",
        }),
        result: serde_json::json!({ "flops": flops, "flops_rule": cfg.flops_rule }),
        report,
        details_md: shares_table(&rows, &chosen),
        files: Vec::new(),
    };
    Ok((arch, derived))
}
