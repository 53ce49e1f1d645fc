//! How sure a derivation is of its choices. AGNAS importances are sums over held-out batches, so resampling the
//! batches (a bootstrap) and deriving again tells how often each decision, and the whole architecture, would come out
//! the same from other held-out images of the same kind.
use super::Importances;
use crate::error::{ensure, Result};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// One choice a derivation makes: an NB201 edge's op, a DARTS node's two inputs with their ops, a macro layer's
/// block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Where the choice is made (`edge 1<-0`, `Cell_0 node 2`, `layer 7`).
    pub point: String,
    pub choice: String,
    /// The strongest alternative the derivation passed over.
    pub runner_up: String,
    /// The choice's lead over the runner-up, in points of the decision's total attention (%); negative where a
    /// budget chose against the attention.
    pub margin: f64,
    /// Operations the choice puts into the network, and how many of them have no parameters (skip, pooling, none):
    /// the candidates that DARTS-style searches collapse to.
    pub ops: usize,
    pub parameter_free: usize,
    /// The scores the decision ranks, for the rank correlation between two held-out passes.
    #[serde(skip)]
    pub scores: Vec<f64>,
}

/// The decisions a space's derivation makes from importances, built once per derivation setting.
pub type Decider = Box<dyn Fn(&Importances) -> Result<Vec<Decision>>>;

/// Settings of the bootstrap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    pub resamples: usize,
    pub seed: u64,
    /// Decisions less sure than this are listed as unsure.
    pub min_confidence: f64,
}

/// A decision with the share of bootstrap resamples that made the same choice (none without a bootstrap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessed {
    #[serde(flatten)]
    pub decision: Decision,
    pub confidence: Option<f64>,
}

impl Assessed {
    fn unsure(&self, min_confidence: f64) -> bool {
        self.confidence.is_some_and(|c| c < min_confidence)
    }
}

/// The decisions of one held-out pass and how sure each is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confidence {
    /// Held-out batches the importances summed, and the resamples drawn from them (none from a single batch).
    pub batches: usize,
    pub resamples: usize,
    /// Share of the resamples that gave the whole architecture.
    pub architecture: Option<f64>,
    pub decisions: Vec<Assessed>,
    /// Share of the chosen operations that have no parameters.
    pub parameter_free_share: f64,
    pub min_confidence: f64,
    /// Points whose confidence is below `min_confidence`.
    pub unsure: Vec<String>,
}

impl Confidence {
    /// The choices, one per decision point, in order.
    pub fn choices(&self) -> Vec<&str> {
        self.decisions.iter().map(|d| d.decision.choice.as_str()).collect()
    }

    /// Whether every decision is at least `p` sure.
    pub fn all_at_least(&self, p: f64) -> bool {
        self.decisions.iter().all(|d| d.confidence.is_some_and(|c| c >= p))
    }

    /// The least sure decision's confidence.
    pub fn weakest(&self) -> Option<f64> {
        self.decisions.iter().filter_map(|d| d.confidence).reduce(f64::min)
    }

    /// Warnings for the terminal: unsure decisions, and a choice dominated by parameter-free operations.
    pub fn warnings(&self, max_parameter_free: f64) -> Vec<String> {
        let mut w = Vec::new();
        if !self.unsure.is_empty() {
            let listed: Vec<String> = self
                .decisions
                .iter()
                .filter(|d| d.unsure(self.min_confidence))
                .map(|d| format!("{} {} ({:.2})", d.decision.point, d.decision.choice, d.confidence.unwrap_or(0.0)))
                .collect();
            w.push(format!(
                "{} of {} decisions are less than {} sure: {}",
                listed.len(),
                self.decisions.len(),
                self.min_confidence,
                listed.join(", ")
            ));
        }
        if self.parameter_free_share > max_parameter_free {
            // A budget that rules out the attention's pick (a negative margin) for a parameter-free one chose it,
            // not the search.
            let ops: usize = self.decisions.iter().map(|d| d.decision.ops).sum();
            let forced: usize =
                self.decisions.iter().filter(|d| d.decision.margin < 0.0).map(|d| d.decision.parameter_free).sum();
            let share = 100.0 * self.parameter_free_share;
            let chosen_by_attention = (self.parameter_free_share * ops as f64 - forced as f64) / ops.max(1) as f64;
            w.push(if forced > 0 && chosen_by_attention <= max_parameter_free {
                format!(
                    "{share:.0} % of the chosen operations have no parameters, {forced} of them because the budget \
                     rules out the attention's pick (the attention alone picked {:.0} %)",
                    100.0 * chosen_by_attention.max(0.0)
                )
            } else {
                format!(
                    "{share:.0} % of the chosen operations have no parameters (more than {:.0} %): the search may \
                     have collapsed to skip connections and pooling",
                    100.0 * max_parameter_free
                )
            });
        }
        w
    }

    /// Short lines for pictures: the architecture's confidence and each decision's.
    pub fn notes(&self) -> Vec<String> {
        let free = format!("parameter-free ops {:.0} %", 100.0 * self.parameter_free_share);
        let Some(architecture) = self.architecture else {
            return vec![format!("no confidence: {}; {free}", self.why_no_bootstrap())];
        };
        let mut lines = vec![format!(
            "confidence (bootstrap of {} held-out batches, {} resamples): architecture {architecture:.2}; {free}",
            self.batches, self.resamples,
        )];
        let parts: Vec<String> = self
            .decisions
            .iter()
            .map(|d| {
                let flag = if d.unsure(self.min_confidence) { " (!)" } else { "" };
                format!("{} {:.2}{flag}", d.decision.point, d.confidence.unwrap_or(0.0))
            })
            .collect();
        lines.extend(parts.chunks(6).map(|c| c.join(" · ")));
        lines
    }

    fn why_no_bootstrap(&self) -> String {
        if self.batches < 2 {
            "the held-out pass had one batch".to_string()
        } else {
            format!("resamples = 0 over {} held-out batches", self.batches)
        }
    }

    /// A Markdown table of the decisions for `summary.md`.
    pub fn markdown(&self) -> String {
        let mut s = match self.architecture {
            Some(a) => format!(
                "Decision confidence (share of {} bootstrap resamples of the {} held-out batches that make the same \
                 choice): architecture **{a:.3}**",
                self.resamples, self.batches
            ),
            None => format!("Decisions (no bootstrap: {})", self.why_no_bootstrap()),
        };
        s.push_str(&format!(
            "; {:.0} % of the chosen operations have no parameters.\n\n\
             | decision | choice | runner-up | margin (points) | confidence |\n|---|---|---|---:|---:|\n",
            100.0 * self.parameter_free_share
        ));
        for d in &self.decisions {
            let flag = if d.unsure(self.min_confidence) { " ⚠" } else { "" };
            let confidence = d.confidence.map_or("–".to_string(), |c| format!("{c:.3}{flag}"));
            s.push_str(&format!(
                "| {} | `{}` | `{}` | {:.3} | {confidence} |\n",
                d.decision.point, d.decision.choice, d.decision.runner_up, d.decision.margin
            ));
        }
        s
    }
}

/// The importances of one held-out pass, batch by batch.
#[derive(Debug, Clone, PartialEq)]
pub struct PerBatch {
    /// Axes, shape and mask of every row; its values are the sum of the rows.
    pub total: Importances,
    pub rows: Vec<Vec<f64>>,
}

impl PerBatch {
    /// The rows of a pass whose importances summed to `total` (as the device added them).
    pub fn new(total: Importances, rows: Vec<Vec<f64>>) -> Result<Self> {
        ensure!(!rows.is_empty(), "no held-out batch");
        ensure!(rows.iter().all(|r| r.len() == total.values.len()), "held-out batches of another shape than the total");
        Ok(PerBatch { total, rows })
    }

    /// The importances summed over the batches `counts` picks (how many times each row is drawn).
    fn resample(&self, counts: &[u32]) -> Importances {
        Importances { values: sum_rows(&self.rows, counts.iter().copied()), ..self.total.clone() }
    }
}

/// Σ of `rows`, each taken `counts` times, in row order.
fn sum_rows(rows: &[Vec<f64>], counts: impl Iterator<Item = u32>) -> Vec<f64> {
    let mut total = vec![0.0; rows.first().map_or(0, Vec::len)];
    for (row, n) in rows.iter().zip(counts) {
        if n > 0 {
            let n = f64::from(n);
            total.iter_mut().zip(row).for_each(|(t, v)| *t += n * v);
        }
    }
    total
}

/// The decisions of `batches`' total and the share of bootstrap resamples (batches drawn with replacement) that
/// repeat each of them and all of them. One batch allows no resampling.
pub fn assess(batches: &PerBatch, decide: &Decider, settings: Bootstrap) -> Result<Confidence> {
    let decisions = decide(&batches.total)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed);
    let n = batches.rows.len();
    let resamples = if n < 2 { 0 } else { settings.resamples };
    let mut same = vec![0usize; decisions.len()];
    let mut whole = 0usize;
    let mut counts = vec![0u32; n];
    for _ in 0..resamples {
        counts.fill(0);
        for _ in 0..n {
            counts[rng.gen_range(0..n)] += 1;
        }
        let drawn = decide(&batches.resample(&counts))?;
        let mut all = true;
        for ((s, d), r) in same.iter_mut().zip(&decisions).zip(&drawn) {
            if d.choice == r.choice {
                *s += 1;
            } else {
                all = false;
            }
        }
        whole += usize::from(all);
    }
    let share = |k: usize| (resamples > 0).then(|| k as f64 / resamples as f64);
    let ops: usize = decisions.iter().map(|d| d.ops).sum();
    let free: usize = decisions.iter().map(|d| d.parameter_free).sum();
    let decisions: Vec<Assessed> =
        decisions.into_iter().zip(same).map(|(decision, k)| Assessed { decision, confidence: share(k) }).collect();
    Ok(Confidence {
        batches: n,
        resamples,
        architecture: share(whole),
        unsure: decisions
            .iter()
            .filter(|d| d.unsure(settings.min_confidence))
            .map(|d| d.decision.point.clone())
            .collect(),
        decisions,
        parameter_free_share: if ops == 0 { 0.0 } else { free as f64 / ops as f64 },
        min_confidence: settings.min_confidence,
    })
}

/// Mean over decision points of Spearman's rank correlation between two passes' scores (ties share their mean
/// rank); `None` when the passes differ in their points or no point has two distinct scores.
pub fn rank_correlation(before: &[Decision], after: &[Decision]) -> Option<f64> {
    if before.len() != after.len() {
        return None;
    }
    let rhos: Vec<f64> = before
        .iter()
        .zip(after)
        .filter(|(a, b)| a.point == b.point && a.scores.len() == b.scores.len())
        .filter_map(|(a, b)| spearman(&a.scores, &b.scores))
        .collect();
    (!rhos.is_empty()).then(|| rhos.iter().sum::<f64>() / rhos.len() as f64)
}

fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ra, rb) = (ranks(a), ranks(b));
    let mean = (a.len() as f64 + 1.0) / 2.0;
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - mean) * (y - mean);
        va += (x - mean).powi(2);
        vb += (y - mean).powi(2);
    }
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// 1-based ranks, ties sharing the mean of their ranks.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0;
        order[start..end].iter().for_each(|&i| ranks[i] = rank);
        start = end;
    }
    ranks
}

/// The winner and runner-up among `candidates` (index, score), first maximum winning, and the winner's lead in
/// points of `total`.
pub fn lead(candidates: impl Iterator<Item = (usize, f64)>, total: f64) -> Option<(usize, usize, f64)> {
    let mut sorted: Vec<(usize, f64)> = candidates.collect();
    // Stable: equal scores keep their order, so the first maximum wins as numpy's argmax.
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (&(w, sw), &(r, sr)) = (sorted.first()?, sorted.get(1)?);
    Some((w, r, 100.0 * (sw - sr) / total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(point: &str, choice: &str, scores: Vec<f64>) -> Decision {
        Decision {
            point: point.into(),
            choice: choice.into(),
            runner_up: String::new(),
            margin: 0.0,
            ops: 1,
            parameter_free: usize::from(choice == "skip"),
            scores,
        }
    }

    /// Two decision points of two candidates each: the argmax of each row of a (2, 2) tensor.
    fn argmax_decider() -> Decider {
        Box::new(|imp: &Importances| {
            Ok(imp
                .values
                .chunks(2)
                .enumerate()
                .map(|(i, row)| {
                    let choice = if row[1] > row[0] { "conv" } else { "skip" };
                    decision(&format!("point {i}"), choice, row.to_vec())
                })
                .collect())
        })
    }

    fn template() -> Importances {
        Importances { axes: vec!["point".into(), "op".into()], shape: vec![2, 2], values: vec![0.0; 4], mask: None }
    }

    /// Skips that a budget forced (a negative margin) are not read as the search's collapse.
    #[test]
    fn a_budget_forced_skip_is_no_collapse() {
        let forced = Decision { margin: -3.0, ..decision("layer 1", "skip", vec![]) };
        let decisions = [decision("layer 0", "skip", vec![]), forced, decision("layer 2", "conv", vec![])];
        let c = Confidence {
            batches: 1,
            resamples: 0,
            architecture: None,
            decisions: decisions.into_iter().map(|decision| Assessed { decision, confidence: None }).collect(),
            parameter_free_share: 2.0 / 3.0,
            min_confidence: 0.9,
            unsure: vec![],
        };
        let w = c.warnings(0.5);
        assert!(w[0].contains("1 of them because the budget") && w[0].contains("alone picked 33 %"), "{w:?}");
        assert!(c.warnings(0.2)[0].contains("collapsed"), "the attention's own picks exceed the share too");
    }

    #[test]
    fn a_clear_decision_is_sure_and_a_coin_toss_is_not() {
        // Point 0: conv wins every batch by a wide margin. Point 1: conv leads 6 batches by 1, skip 4 by 1.5; the
        // sums tie and the first maximum (skip) wins, which a resample keeps unless it draws 7 or more conv batches
        // (binomial: 0.62).
        let rows: Vec<Vec<f64>> =
            (0..10).map(|b| if b < 6 { vec![1.0, 5.0, 1.0, 2.0] } else { vec![1.0, 5.0, 2.5, 1.0] }).collect();
        let total = Importances { values: sum_rows(&rows, rows.iter().map(|_| 1)), ..template() };
        assert_eq!(total.values, vec![10.0, 50.0, 16.0, 16.0]);
        let batches = PerBatch::new(total, rows).unwrap();
        let settings = Bootstrap { resamples: 400, seed: 7, min_confidence: 0.9 };
        let c = assess(&batches, &argmax_decider(), settings).unwrap();
        assert_eq!(c.choices(), ["conv", "skip"]);
        assert_eq!(c.decisions[0].confidence, Some(1.0));
        let p = c.decisions[1].confidence.unwrap();
        assert!((0.5..0.75).contains(&p), "{p}");
        assert_eq!(c.architecture, Some(p), "the architecture stands or falls with its only unsure decision");
        assert_eq!(c.weakest(), Some(p));
        assert!(c.all_at_least(p) && !c.all_at_least(0.9));
        assert_eq!(c.unsure, ["point 1"]);
        assert_eq!(c.parameter_free_share, 0.5);
        assert_eq!(c.warnings(0.6).len(), 1, "only the unsure decision");
        assert_eq!(c.warnings(0.4).len(), 2, "and the parameter-free share");
        // Same seed, same numbers.
        assert_eq!(assess(&batches, &argmax_decider(), settings).unwrap(), c);
        assert!(c.markdown().contains("| point 1 | `skip` |"), "{}", c.markdown());
        // One batch cannot be resampled: decisions without confidence, never "sure".
        let one = PerBatch::new(batches.total.clone(), vec![batches.total.values.clone()]).unwrap();
        let c = assess(&one, &argmax_decider(), settings).unwrap();
        assert_eq!((c.resamples, c.architecture, c.decisions[0].confidence), (0, None, None));
        assert!(c.unsure.is_empty() && !c.all_at_least(0.5));
        assert!(c.markdown().contains("no bootstrap: the held-out pass had one batch"), "{}", c.markdown());
        // Resampling switched off: no confidence either, and the reason is not the batch count.
        let off = assess(&batches, &argmax_decider(), Bootstrap { resamples: 0, ..settings }).unwrap();
        assert_eq!((off.batches, off.architecture), (10, None));
        assert!(off.notes()[0].contains("resamples = 0 over 10 held-out batches"), "{:?}", off.notes());
        let back: Confidence = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.decisions[0].decision.choice, c.decisions[0].decision.choice);
    }

    #[test]
    fn rank_correlation_is_one_for_the_same_order_and_minus_one_reversed() {
        let a = vec![decision("p", "x", vec![1.0, 2.0, 3.0]), decision("q", "x", vec![1.0, 1.0, 1.0])];
        let same = vec![decision("p", "x", vec![10.0, 20.0, 30.0]), decision("q", "x", vec![3.0, 2.0, 1.0])];
        // q has no spread in the first pass: it has no correlation and is left out of the mean.
        assert_eq!(rank_correlation(&a, &same), Some(1.0));
        let reversed = vec![decision("p", "x", vec![3.0, 2.0, 1.0]), decision("q", "x", vec![1.0, 2.0, 3.0])];
        assert_eq!(rank_correlation(&a, &reversed), Some(-1.0));
        assert_eq!(rank_correlation(&a, &a[..1]), None);
        assert_eq!(ranks(&[2.0, 1.0, 2.0, 0.0]), vec![3.5, 2.0, 3.5, 1.0]);
    }

    #[test]
    fn lead_takes_the_first_maximum() {
        assert_eq!(lead([(0, 1.0), (1, 3.0), (2, 3.0)].into_iter(), 7.0), Some((1, 2, 0.0)));
        let (w, r, m) = lead([(0, 1.0), (1, 4.0), (2, 2.0)].into_iter(), 10.0).unwrap();
        assert_eq!((w, r), (1, 2));
        assert!((m - 20.0).abs() < 1e-12);
        assert_eq!(lead([(0, 1.0)].into_iter(), 1.0), None);
    }
}
