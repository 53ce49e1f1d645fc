//! Reading a macro architecture off the held-out importances: per layer the candidate with the largest summed
//! attention (first maximum wins, as the official `export_op.py`), priced by the cost model.
use super::arch::{self, Arch, LAYERS, MAX_CANDIDATES};
use super::cost::{CostModel, FlopsRule};
use super::select::{self, Selection};
use super::supernet::ProxylessConfig;
use crate::space::{Derived, Importances};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// `[derive]` of the macro space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxylessDeriveConfig {
    /// The best architecture whose FLOPs are at most this, chosen exactly (0 = no budget: the plain argmax).
    pub max_flops: f64,
    /// Width, input side and classes the FLOPs are counted at: the deployment's, whatever the search ran at.
    pub cost_width_mult: f64,
    pub cost_image_size: i64,
    pub cost_num_classes: i64,
    pub flops_rule: FlopsRule,
}

impl Default for ProxylessDeriveConfig {
    fn default() -> Self {
        ProxylessDeriveConfig {
            max_flops: 0.0,
            cost_width_mult: 1.0,
            cost_image_size: 224,
            cost_num_classes: 1000,
            flops_rule: FlopsRule::Table,
        }
    }
}

impl ProxylessDeriveConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.max_flops >= 0.0, "derive.max_flops must be >= 0 (0 = no budget), got {}", self.max_flops);
        super::supernet::validate_width(self.cost_width_mult, "derive.cost_width_mult")?;
        ensure!(self.cost_image_size >= 32, "derive.cost_image_size must be at least 32");
        ensure!(self.cost_num_classes >= 1, "derive.cost_num_classes must be at least 1");
        Ok(())
    }

    fn cost_model(&self) -> CostModel {
        CostModel::new(self.cost_width_mult, self.cost_image_size, self.cost_num_classes)
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

/// Every layer's options for [`select`]: importance and FLOPs in slot order.
fn selection_layers(rows: &[Vec<f64>], costs: &CostModel) -> Vec<select::Layer> {
    rows.iter()
        .enumerate()
        .map(|(l, row)| select::Layer {
            options: row
                .iter()
                .enumerate()
                .map(|(slot, &importance)| select::Choice {
                    id: if slot < arch::MBCONVS { slot as i8 } else { arch::SKIP },
                    importance,
                    cost: costs.candidate(l, slot) as f64,
                })
                .collect(),
        })
        .collect()
}

fn arch_of(selection: &Selection) -> Result<Arch> {
    Ok(Arch::from_slots(&selection.positions)?)
}

/// The whole budget front of one search: at every cost the best-scoring architecture, with its total FLOPs.
fn front_json(front: &select::Front, fixed: u64) -> Result<serde_json::Value> {
    let points: Vec<serde_json::Value> = front
        .points()
        .iter()
        .map(|p| {
            Ok(serde_json::json!({
                "flops": p.cost as u64 + fixed,
                "score": p.score,
                "arch": arch_of(p)?,
            }))
        })
        .collect::<Result<_>>()?;
    Ok(serde_json::json!(points))
}

/// The architecture and what the run folder says of it (its pictures are the space's to add): the per-layer argmax,
/// or under `max_flops` the best architecture that fits, and the budget front either way.
pub fn derive(_: &ProxylessConfig, cfg: &ProxylessDeriveConfig, importances: &Importances) -> Result<(Arch, Derived)> {
    let rows = layer_rows(importances)?;
    let costs = cfg.cost_model();
    let fixed = costs.fixed(cfg.flops_rule);
    let layers = selection_layers(&rows, &costs);
    let argmax = select::argmax(&layers)?;
    let front = select::front(&layers)?;
    let chosen = if cfg.max_flops > 0.0 {
        let budget = cfg.max_flops - fixed as f64;
        front
            .best_under(budget)
            .map_err(|e| match e {
                select::SelectError::OverBudget { cheapest, .. } => anyhow::anyhow!(
                    "derive.max_flops = {} is below the cheapest architecture of the space, {} FLOPs",
                    cfg.max_flops,
                    cheapest as u64 + fixed
                ),
                e => e.into(),
            })?
            .clone()
    } else {
        argmax.clone()
    };
    let arch = arch_of(&chosen)?;
    let flops = costs.arch(&arch, cfg.flops_rule);
    let plain = arch_of(&argmax)?;
    let at = format!(
        "width {}, {} px, {} classes ({})",
        cfg.cost_width_mult,
        cfg.cost_image_size,
        cfg.cost_num_classes,
        cfg.flops_rule.describe()
    );
    let mut report = vec![format!("{:.2} M FLOPs at {at}", flops as f64 / 1e6)];
    let selection = if cfg.max_flops > 0.0 {
        report.push(format!(
            "best under {:.2} M FLOPs (score {:.4}); the plain argmax {plain} has {:.2} M (score {:.4})",
            cfg.max_flops / 1e6,
            chosen.score,
            costs.arch(&plain, cfg.flops_rule) as f64 / 1e6,
            argmax.score
        ));
        format!("best score with at most {} FLOPs (exact multiple-choice knapsack)", cfg.max_flops)
    } else {
        "argmax per layer (first maximum wins)".to_string()
    };
    // The front drawn in total FLOPs (the layers' costs plus the fixed stem and head), in millions.
    let as_m = |s: &Selection| Selection { cost: (s.cost + fixed as f64) / 1e6, ..s.clone() };
    let shifted: Vec<Selection> = front.points().iter().map(as_m).collect();
    let chosen_point = (cfg.max_flops > 0.0).then(|| as_m(&chosen));
    let front_svg = select::front_svg(&shifted, &as_m(&argmax), chosen_point.as_ref(), "M FLOPs");
    let derived = Derived {
        name: arch.to_string(),
        genotype: serde_json::json!({
            "space": "proxyless",
            "arch": arch,
            "ids": arch.ids(),
            "blocks": arch.slots().map(arch::candidate_label),
            "selection": selection,
            "score": chosen.score,
            "argmax_arch": plain,
        }),
        result: serde_json::json!({ "flops": flops, "flops_at": at }),
        report,
        details_md: format!(
            "Selection: {selection}; {:.2} M FLOPs at {at}.\n\n{}",
            flops as f64 / 1e6,
            shares_table(&rows, &arch.slots())
        ),
        files: vec![
            ("front.json".into(), serde_json::to_vec_pretty(&front_json(&front, fixed)?)?),
            ("front.svg".into(), front_svg.into_bytes()),
        ],
    };
    Ok((arch, derived))
}
