//! Reading a macro architecture off the held-out importances: per layer the candidate with the largest summed
//! attention (first maximum wins, as the official `export_op.py`), priced by the cost model.
use super::arch::{self, Arch, LAYERS, MAX_CANDIDATES};
use super::cost::{CostModel, FlopsRule};
use super::latency::{LatencySpec, LatencyTable};
use super::select::{self, Selection};
use super::supernet::ProxylessConfig;
use crate::config::Section;
use crate::error::{ensure, Result};
use crate::space::confidence::{Decider, Decision};
use crate::space::{Derived, Importances};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[derive]` of the macro space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxylessDeriveConfig {
    /// The best architecture whose FLOPs are at most this, chosen exactly (0 = no budget: the plain argmax).
    pub max_flops: f64,
    /// The best architecture whose latency by `latency_table` is at most this many ms (0 = no budget).
    pub max_latency_ms: f64,
    /// A table written by `agnas latency-table` at the cost sizes below (empty = none); with one, the run folder
    /// also gets the latency front.
    pub latency_table: PathBuf,
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
            max_latency_ms: 0.0,
            latency_table: PathBuf::new(),
            cost_width_mult: 1.0,
            cost_image_size: 224,
            cost_num_classes: 1000,
            flops_rule: FlopsRule::Table,
        }
    }
}

impl Section for ProxylessDeriveConfig {
    fn validate(&self) -> Result<()> {
        ensure!(self.max_flops >= 0.0, "derive.max_flops must be >= 0 (0 = no budget), got {}", self.max_flops);
        ensure!(
            self.max_latency_ms >= 0.0,
            "derive.max_latency_ms must be >= 0 (0 = no budget), got {}",
            self.max_latency_ms
        );
        super::supernet::validate_width(self.cost_width_mult, "derive.cost_width_mult")?;
        ensure!(self.cost_image_size >= 32, "derive.cost_image_size must be at least 32");
        ensure!(self.cost_num_classes >= 1, "derive.cost_num_classes must be at least 1");
        Ok(())
    }
}

impl ProxylessDeriveConfig {
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

/// One way of pricing architectures: a cost per layer and candidate slot that adds over layers, plus a fixed part.
struct Pricing {
    /// The key of the cost in `front*.json` and `result.json`.
    key: &'static str,
    /// The unit a front is drawn in, and the divisor from the raw cost to it.
    unit: &'static str,
    scale: f64,
    fixed: f64,
    layers: Vec<[f64; MAX_CANDIDATES]>,
    /// The budget on the total (0 = none).
    budget: f64,
}

impl Pricing {
    fn flops(cfg: &ProxylessDeriveConfig) -> Self {
        let model = cfg.cost_model();
        let layers = (0..LAYERS).map(|l| std::array::from_fn(|slot| model.candidate(l, slot) as f64)).collect();
        Pricing {
            key: "flops",
            unit: "M FLOPs",
            scale: 1e6,
            fixed: model.fixed(cfg.flops_rule) as f64,
            layers,
            budget: cfg.max_flops,
        }
    }

    /// Latency from the table `derive.latency_table`, if one is named.
    fn latency(cfg: &ProxylessDeriveConfig) -> Result<Option<Self>> {
        if cfg.latency_table.as_os_str().is_empty() {
            ensure!(
                cfg.max_latency_ms == 0.0,
                "derive.max_latency_ms needs derive.latency_table (agnas latency-table)"
            );
            return Ok(None);
        }
        let table = LatencyTable::load(&cfg.latency_table)?;
        let spec = LatencySpec {
            width_mult: cfg.cost_width_mult,
            image_size: cfg.cost_image_size,
            num_classes: cfg.cost_num_classes,
        };
        let costs = table.model(&spec)?;
        let layers = (0..LAYERS).map(|l| std::array::from_fn(|slot| costs.candidate(l, slot))).collect();
        Ok(Some(Pricing {
            key: "latency_ms",
            unit: "ms",
            scale: 1.0,
            fixed: costs.fixed,
            layers,
            budget: cfg.max_latency_ms,
        }))
    }

    /// Every layer's options for [`select`]: importance and cost in slot order.
    fn selection_layers(&self, rows: &[Vec<f64>]) -> Vec<select::Layer> {
        rows.iter()
            .zip(&self.layers)
            .map(|(row, costs)| select::Layer {
                options: row
                    .iter()
                    .zip(costs)
                    .enumerate()
                    .map(|(slot, (&importance, &cost))| select::Choice {
                        id: if slot < arch::MBCONVS { slot as i8 } else { arch::SKIP },
                        importance,
                        cost,
                    })
                    .collect(),
            })
            .collect()
    }

    /// The best architecture within the budget.
    fn best<'a>(&self, front: &'a select::Front) -> Result<&'a Selection> {
        front.best_under(self.budget - self.fixed).map_err(|e| match e {
            select::SelectError::OverBudget { cheapest, .. } => crate::Error::Message(format!(
                "derive.max_{} = {} is below the cheapest architecture of the space, {} {}",
                self.key,
                self.budget,
                (cheapest + self.fixed) / self.scale,
                self.unit
            )),
            e => e.into(),
        })
    }

    fn total(&self, arch: &Arch) -> f64 {
        self.fixed + arch.slots().iter().zip(&self.layers).map(|(&s, c)| c[s]).sum::<f64>()
    }

    /// The front as the run folder keeps it: each point's total cost, score and architecture.
    fn front_json(&self, front: &select::Front) -> Result<Vec<u8>> {
        let points = front
            .points()
            .iter()
            .map(|p| {
                let mut point = serde_json::json!({ "score": p.score, "arch": arch_of(p)? });
                point[self.key] = number(p.cost + self.fixed);
                Ok(point)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(serde_json::to_vec_pretty(&points)?)
    }

    /// The front drawn in total cost (the layers' plus the fixed stem and head) in the pricing's unit.
    fn front_svg(&self, front: &select::Front, argmax: &Selection, chosen: Option<&Selection>) -> String {
        let shift = |s: &Selection| Selection { cost: (s.cost + self.fixed) / self.scale, ..s.clone() };
        let points: Vec<Selection> = front.points().iter().map(shift).collect();
        select::front_svg(&points, &shift(argmax), chosen.map(shift).as_ref(), self.unit)
    }
}

/// A cost for JSON: FLOPs as the integers they are, latencies as they come.
fn number(x: f64) -> serde_json::Value {
    if x.fract() == 0.0 && x.abs() < 2f64.powi(53) {
        (x as i64).into()
    } else {
        x.into()
    }
}

fn arch_of(selection: &Selection) -> Result<Arch> {
    Arch::from_slots(&selection.positions)
}

/// The decisions of [`derive`]: per layer the chosen block against the layer's strongest other candidate (under a
/// budget the choice can trail it: a negative margin).
pub fn decider(cfg: &ProxylessDeriveConfig) -> Result<Decider> {
    ensure!(
        cfg.max_flops == 0.0 || cfg.max_latency_ms == 0.0,
        "derive.max_flops and derive.max_latency_ms are both set: give one budget"
    );
    let budgeted = std::iter::once(Pricing::flops(cfg)).chain(Pricing::latency(cfg)?).find(|p| p.budget > 0.0);
    let argmax_pricing = Pricing::flops(cfg);
    Ok(Box::new(move |importances: &Importances| {
        let rows = layer_rows(importances)?;
        let chosen = match &budgeted {
            Some(p) => p.best(&select::front(&p.selection_layers(&rows))?)?.clone(),
            None => select::argmax(&argmax_pricing.selection_layers(&rows))?,
        };
        Ok(rows
            .iter()
            .zip(&chosen.positions)
            .enumerate()
            .map(|(l, (row, &slot))| {
                let total: f64 = row.iter().sum();
                let (other, v) = row
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != slot)
                    .fold((0, f64::NEG_INFINITY), |best, (k, &v)| if v > best.1 { (k, v) } else { best });
                Decision {
                    point: format!("layer {l}"),
                    choice: arch::candidate_label(slot),
                    runner_up: arch::candidate_label(other),
                    margin: 100.0 * (row[slot] - v) / total,
                    ops: 1,
                    parameter_free: usize::from(slot == arch::MBCONVS),
                    scores: row.clone(),
                }
            })
            .collect())
    }))
}

/// The architecture and what the run folder says of it (its pictures are the space's to add): the per-layer argmax,
/// or under `max_flops` or `max_latency_ms` the best architecture that fits; the budget fronts either way.
/// `genotype.json` of a search: the architecture as the field writes it, and how it was selected.
#[derive(Debug, Serialize)]
pub struct Derivation {
    space: &'static str,
    arch: Arch,
    /// The official layer ids (−1 = skip).
    ids: [i8; LAYERS],
    blocks: [String; LAYERS],
    selection: String,
    score: f64,
    /// The plain argmax per layer, for comparison.
    argmax_arch: Arch,
}

/// What a search adds to `result.json`: the architecture's costs (FLOPs, and latency where a table was given) and
/// what they were counted at.
#[derive(Debug, Serialize)]
pub struct Findings {
    cost_at: String,
    /// By cost key (`flops`, `latency_ms`).
    #[serde(flatten)]
    costs: std::collections::BTreeMap<&'static str, serde_json::Value>,
}

pub fn derive(
    _: &ProxylessConfig,
    cfg: &ProxylessDeriveConfig,
    importances: &Importances,
) -> Result<(Arch, Derived<Derivation, Findings>)> {
    ensure!(
        cfg.max_flops == 0.0 || cfg.max_latency_ms == 0.0,
        "derive.max_flops and derive.max_latency_ms are both set: give one budget"
    );
    let rows = layer_rows(importances)?;
    let pricings: Vec<Pricing> = std::iter::once(Pricing::flops(cfg)).chain(Pricing::latency(cfg)?).collect();
    let argmax = select::argmax(&pricings[0].selection_layers(&rows))?;
    let plain = arch_of(&argmax)?;
    let mut chosen = argmax.clone();
    let mut selection = "argmax per layer (first maximum wins)".to_string();
    let mut files = Vec::new();
    for pricing in &pricings {
        let front = select::front(&pricing.selection_layers(&rows))?;
        let budgeted = (pricing.budget > 0.0).then(|| pricing.best(&front)).transpose()?;
        if let Some(best) = budgeted {
            chosen = best.clone();
            selection = format!(
                "best score with at most {} {} (exact multiple-choice knapsack)",
                pricing.budget / pricing.scale,
                pricing.unit
            );
        }
        let name = if pricing.key == "flops" { "front".to_string() } else { format!("front_{}", pricing.key) };
        files.push((format!("{name}.json"), pricing.front_json(&front)?));
        files.push((format!("{name}.svg"), pricing.front_svg(&front, &argmax, budgeted).into_bytes()));
    }
    let arch = arch_of(&chosen)?;
    let at = format!(
        "width {}, {} px, {} classes (FLOPs: {})",
        cfg.cost_width_mult,
        cfg.cost_image_size,
        cfg.cost_num_classes,
        cfg.flops_rule.describe()
    );
    let costs: Vec<String> = pricings.iter().map(|p| format!("{:.2} {}", p.total(&arch) / p.scale, p.unit)).collect();
    let mut report = vec![format!("{} at {at}", costs.join(", "))];
    if chosen.positions != argmax.positions {
        let plain_costs: Vec<String> =
            pricings.iter().map(|p| format!("{:.2} {}", p.total(&plain) / p.scale, p.unit)).collect();
        report.push(format!(
            "{selection}: score {:.4}; the plain argmax {plain} has {} (score {:.4})",
            chosen.score,
            plain_costs.join(", "),
            argmax.score
        ));
    }
    let result =
        Findings { costs: pricings.iter().map(|p| (p.key, number(p.total(&arch)))).collect(), cost_at: at.clone() };
    let derived = Derived {
        name: arch.to_string(),
        genotype: Derivation {
            space: "proxyless",
            arch,
            ids: arch.ids(),
            blocks: arch.slots().map(arch::candidate_label),
            selection: selection.clone(),
            score: chosen.score,
            argmax_arch: plain,
        },
        result,
        details_md: format!(
            "Selection: {selection}; {} at {at}.\n\n{}",
            costs.join(", "),
            shares_table(&rows, &arch.slots())
        ),
        report,
        files,
    };
    Ok((arch, derived))
}
