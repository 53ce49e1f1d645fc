//! Budgeted architecture selection for the ProxylessNAS macro space, from the attention importances of a search.
//!
//! Every layer picks one option (an MBConv candidate, or the identity "skip" where the layer allows one); each
//! option carries the importance the search accumulated on it and an additive cost (FLOPs or latency). Plain
//! selection is the argmax of every layer. Under a budget the layers compete for it, a multiple-choice knapsack,
//! which [`front`] and [`best_under`] solve exactly; [`front`] also gives the whole cost–score trade-off.
//!
//! # Score
//! An option scores the log of its share of its layer's total importance, `ln(a_k / Σ_j a_j)`, and an architecture
//! the sum over its layers: the log of the product of the per-layer shares, i.e. its log-likelihood when each
//! layer's normalised attention is read as an independent distribution over the layer's options. Shares, because
//! layers' totals differ (summed gates grow with a layer's channels and resolution): summing raw importances would
//! let the layers with large totals outvote the rest, while a share only weighs a layer's options against each
//! other. The log turns the product into a sum, which is what makes the problem a knapsack, and since the sum
//! separates over layers the best architecture without a budget is the per-layer argmax.
//!
//! # Exact arithmetic
//! Costs are `f64`, not a generic type: latencies are fractional, and FLOPs are integers far below 2^53, which
//! `f64` holds exactly, so one type serves both. Inside, every cost becomes an integer count of the finest binary
//! digit that any cost uses. That is a lossless rescaling, not a grid: sums are exact whatever the order of
//! addition, and two architectures tie in cost only when their costs are equal. A sum is rounded to `f64` once, for
//! [`Selection::cost`]; budgets are compared with that (the rounding is monotone, so this is still a threshold on
//! the exact sums), and it is exact for integer costs. Scores become integers of 2^-60, finer than an `f64` log
//! resolves anywhere but next to 0 (where only a layer's single dominant option can lie), so their sums are exact
//! too. Where two importances are so close that their rounded logs collide, the larger is kept one unit above the
//! smaller, so scores never reorder what the argmax orders.
//!
//! # Ties
//! Equal score goes to the lower cost; equal score and cost to the lexicographically smaller vector of option
//! positions, so the first maximum wins as in the argmax. The unconstrained best is therefore the argmax, except
//! where a layer's tied maxima differ in cost: there it takes the cheaper one, since the other is dominated.
use crate::report::svg::{self, El, PathData, Svg};

/// Scores are counted in units of 2^-SCORE_BITS.
const SCORE_BITS: u32 = 60;
/// The most binary digits an exact cost may take, so that no cost overflows `i128`.
const COST_BITS: u32 = 126;
/// The most candidates one layer may weigh (about 240 MB); realistic fronts need thousands.
const MAX_CANDIDATES: usize = 1 << 22;

/// One option of a layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// The candidate as the genotype names it: 0..5 for the MBConv candidates, -1 for skip.
    pub id: i8,
    /// The attention the search accumulated on the option: positive and finite.
    pub importance: f64,
    /// The option's additive cost (FLOPs, milliseconds): finite.
    pub cost: f64,
}

/// The options of one layer, in candidate order (the order that breaks ties).
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub options: Vec<Choice>,
}

/// One architecture: an option per layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// The chosen option's id, per layer.
    pub ids: Vec<i8>,
    /// The chosen option's position in its layer's `options`, per layer.
    pub positions: Vec<usize>,
    /// Σ over layers of ln(importance / layer total), at most 0. Held exactly inside and rounded here, so two
    /// architectures whose exact scores differ by less than the last place show the same score.
    pub score: f64,
    /// Σ over layers of the chosen costs: the exact sum rounded once, so exact for integers below 2^53 and at least
    /// as close as any order of `f64` additions for fractions.
    pub cost: f64,
}

/// Why no selection could be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectError {
    #[error("layer {layer} has no options")]
    EmptyLayer { layer: usize },
    #[error("layer {layer}, option {option}: importance {value} is not a positive finite number")]
    Importance { layer: usize, option: usize, value: f64 },
    #[error("layer {layer}, option {option}: cost {value} is not finite")]
    Cost { layer: usize, option: usize, value: f64 },
    #[error("the costs span more than {COST_BITS} binary orders of magnitude, too many to add exactly")]
    CostRange,
    #[error(
        "layer {layer} would weigh more than {MAX_CANDIDATES} partial architectures: the scores follow the costs so \
         closely that nearly every architecture is Pareto-optimal"
    )]
    TooManyStates { layer: usize },
    #[error("the budget is not a number")]
    Budget,
    #[error("no architecture costs at most {budget}: the cheapest costs {cheapest}")]
    OverBudget { budget: f64, cheapest: f64 },
}

/// The Pareto front: every architecture that no other beats in both cost and score, by strictly increasing cost
/// and exact score, each the lexicographically first of those with its cost and score.
#[derive(Debug, Clone, PartialEq)]
pub struct Front {
    /// Never empty: with no layers the one architecture is the empty one.
    points: Vec<Selection>,
}

impl Front {
    pub fn points(&self) -> &[Selection] {
        &self.points
    }

    /// The best architecture whose layers cost at most `budget` (subtract fixed costs such as the stem and head
    /// first), in O(log front) time.
    pub fn best_under(&self, budget: f64) -> Result<&Selection, SelectError> {
        if budget.is_nan() {
            return Err(SelectError::Budget);
        }
        let fitting = self.points.partition_point(|p| p.cost <= budget);
        match fitting.checked_sub(1) {
            Some(best) => Ok(&self.points[best]),
            None => Err(SelectError::OverBudget { budget, cheapest: self.points[0].cost }),
        }
    }
}

/// The per-layer argmax; the first maximum wins.
pub fn argmax(layers: &[Layer]) -> Result<Selection, SelectError> {
    let problem = Problem::new(layers)?;
    let positions = layers.iter().map(|l| first_max(&l.options)).collect();
    Ok(problem.selection(layers, positions))
}

/// The best architecture whose layers cost at most `budget`; see [`Front::best_under`]. To try several budgets,
/// compute the [`front`] once.
pub fn best_under(layers: &[Layer], budget: f64) -> Result<Selection, SelectError> {
    front(layers)?.best_under(budget).cloned()
}

/// Every Pareto-optimal architecture, by dynamic programming over the layers that keeps the Pareto set of partial
/// architectures (dominated ones cannot be completed into anything better than their dominator's completion).
///
/// Complexity: a layer with `m` options turns the `F` partial architectures kept so far into `F·m` candidates,
/// sorted in O(F·m·log(F·m)), and keeps one back-pointer per survivor. `F` is at most the number of distinct
/// partial costs (and of distinct partial scores), so it grows with the spread of the costs rather than with `m^L`
/// in practice. Only `Π m` bounds it in the worst case, which the knapsack being NP-hard makes unavoidable: when
/// every layer's scores are an affine function of its costs with one common slope, all architectures lie on a line
/// and none dominates another. 21 layers of 6–7 options with random integer FLOPs keep hundreds to a few thousand
/// states and take milliseconds; beyond [`MAX_CANDIDATES`] candidates a layer gives up with an error rather than
/// exhaust memory.
pub fn front(layers: &[Layer]) -> Result<Front, SelectError> {
    front_within(layers, MAX_CANDIDATES)
}

fn front_within(layers: &[Layer], max_candidates: usize) -> Result<Front, SelectError> {
    let problem = Problem::new(layers)?;
    let (states, backs) = problem.pareto(max_candidates)?;
    let mut points: Vec<Selection> = Vec::with_capacity(states.len());
    for s in 0..states.len() {
        let next = problem.selection(layers, positions(&backs, s));
        // Exact costs closer than half a unit in the last place round to one cost: the better score dominates.
        if points.last().is_some_and(|last| last.cost == next.cost) {
            points.pop();
        }
        points.push(next);
    }
    Ok(Front { points })
}

fn first_max(options: &[Choice]) -> usize {
    (1..options.len()).fold(0, |best, k| if options[k].importance > options[best].importance { k } else { best })
}

/// An option's exact score (units of 2^-SCORE_BITS) and cost (units of 2^scale).
#[derive(Debug, Clone, Copy)]
struct Item {
    score: i128,
    cost: i128,
}

/// Validated layers in exact units.
struct Problem {
    items: Vec<Vec<Item>>,
    scale: i32,
}

impl Problem {
    fn new(layers: &[Layer]) -> Result<Problem, SelectError> {
        validate(layers)?;
        let scale = finest_digit(layers);
        let items = layers
            .iter()
            .map(|layer| {
                let scores = layer_scores(&layer.options);
                let exact = |(o, score): (&Choice, i128)| Ok(Item { score, cost: cost_units(o.cost, scale)? });
                layer.options.iter().zip(scores).map(exact).collect()
            })
            .collect::<Result<Vec<Vec<Item>>, SelectError>>()?;
        // Every partial sum is bounded by the sum of the largest costs, so checking it once rules out overflow.
        let mut largest = items.iter().map(|l| l.iter().map(|it| it.cost.abs()).max().unwrap_or(0));
        largest.try_fold(0i128, |sum, c| sum.checked_add(c)).ok_or(SelectError::CostRange)?;
        Ok(Problem { items, scale })
    }

    /// `positions` (valid for these layers) as a selection.
    fn selection(&self, layers: &[Layer], positions: Vec<usize>) -> Selection {
        let picked: Vec<Item> = positions.iter().zip(&self.items).map(|(&k, items)| items[k]).collect();
        let score = picked.iter().map(|it| it.score).sum::<i128>();
        let cost = picked.iter().map(|it| it.cost).sum::<i128>();
        Selection {
            ids: layers.iter().zip(&positions).map(|(l, &k)| l.options[k].id).collect(),
            positions,
            score: score as f64 / (1u64 << SCORE_BITS) as f64,
            cost: cost_value(cost, self.scale),
        }
    }

    /// The Pareto set after the last layer, by increasing cost, with the back-pointers of every layer.
    fn pareto(&self, max_candidates: usize) -> Result<(Vec<State>, Vec<Vec<Back>>), SelectError> {
        let mut states = vec![State { cost: 0, score: 0, rank: 0 }];
        let mut backs = Vec::with_capacity(self.items.len());
        for (layer, items) in self.items.iter().enumerate() {
            if states.len().saturating_mul(items.len()) > max_candidates {
                return Err(SelectError::TooManyStates { layer });
            }
            let (next, back) = extend(&states, items);
            states = next;
            backs.push(back);
        }
        Ok((states, backs))
    }
}

fn validate(layers: &[Layer]) -> Result<(), SelectError> {
    for (layer, l) in layers.iter().enumerate() {
        if l.options.is_empty() {
            return Err(SelectError::EmptyLayer { layer });
        }
        for (option, o) in l.options.iter().enumerate() {
            if !(o.importance.is_finite() && o.importance > 0.0) {
                return Err(SelectError::Importance { layer, option, value: o.importance });
            }
            if !o.cost.is_finite() {
                return Err(SelectError::Cost { layer, option, value: o.cost });
            }
        }
    }
    Ok(())
}

/// The options' exact scores, in the importances' order.
fn layer_scores(options: &[Choice]) -> Vec<i128> {
    let max = options.iter().map(|o| o.importance).fold(0.0, f64::max);
    // Dividing by the largest first keeps the total finite however large the importances are.
    let log_total = max.ln() + options.iter().map(|o| o.importance / max).sum::<f64>().ln();
    let unit = (1u64 << SCORE_BITS) as f64;
    let mut scores: Vec<i128> =
        options.iter().map(|o| ((o.importance.ln() - log_total) * unit).round() as i128).collect();
    keep_order(options, &mut scores);
    scores
}

/// Raises scores by single units where rounding made a larger importance's log collide with (or, with an
/// inexact `ln`, fall below) a smaller one's, so the argmax and the unconstrained optimum agree.
fn keep_order(options: &[Choice], scores: &mut [i128]) {
    let mut order: Vec<usize> = (0..options.len()).collect();
    order.sort_by(|&a, &b| options[a].importance.total_cmp(&options[b].importance));
    for pair in order.windows(2) {
        let (lower, higher) = (pair[0], pair[1]);
        scores[higher] = if options[higher].importance == options[lower].importance {
            scores[lower]
        } else {
            scores[higher].max(scores[lower] + 1)
        };
    }
}

/// A nonzero finite `x` as `m · 2^e` with `m` odd; `None` for zero.
fn binary_parts(x: f64) -> Option<(i128, i32)> {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (m, e) = if biased == 0 { (fraction, -1074) } else { (fraction | 1 << 52, biased - 1075) };
    if m == 0 {
        return None;
    }
    let zeros = m.trailing_zeros();
    let m = (m >> zeros) as i128;
    Some((if x < 0.0 { -m } else { m }, e + zeros as i32))
}

/// The exponent of the finest binary digit any cost uses: the unit of the exact costs.
fn finest_digit(layers: &[Layer]) -> i32 {
    layers.iter().flat_map(|l| &l.options).filter_map(|o| binary_parts(o.cost)).map(|(_, e)| e).min().unwrap_or(0)
}

/// `x` in units of 2^scale, where `scale` is at most the exponent of `x`'s finest digit.
fn cost_units(x: f64, scale: i32) -> Result<i128, SelectError> {
    let Some((m, e)) = binary_parts(x) else { return Ok(0) };
    let shift = (e - scale) as u32;
    if shift.saturating_add(128 - m.unsigned_abs().leading_zeros()) > COST_BITS {
        return Err(SelectError::CostRange);
    }
    Ok(m << shift)
}

/// 2^e for an `e` of the normal range.
fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// An exact cost as the nearest `f64`, scaled in two halves so that each factor stays a normal number over the
/// whole range of scales.
fn cost_value(units: i128, scale: i32) -> f64 {
    units as f64 * pow2(scale / 2) * pow2(scale - scale / 2)
}

/// A Pareto-optimal partial architecture: its exact cost and score, and the rank of its option vector in
/// lexicographic order among the states of its layer, which is all the tie-break needs of its history.
#[derive(Debug, Clone, Copy)]
struct State {
    cost: i128,
    score: i128,
    rank: usize,
}

/// Where a state came from: the state of the previous layer it extends and the option it adds.
#[derive(Debug, Clone, Copy)]
struct Back {
    prev: usize,
    option: usize,
}

/// The Pareto set after one more layer. A candidate survives when it scores strictly more than every cheaper or
/// equally cheap one that sorts before it; among candidates of equal cost and score the lexicographically first
/// sorts first, and it is (rank of the prefix, option).
fn extend(states: &[State], items: &[Item]) -> (Vec<State>, Vec<Back>) {
    let mut candidates = Vec::with_capacity(states.len() * items.len());
    for (prev, s) in states.iter().enumerate() {
        for (option, it) in items.iter().enumerate() {
            let next = State { cost: s.cost + it.cost, score: s.score + it.score, rank: s.rank };
            candidates.push((next, Back { prev, option }));
        }
    }
    candidates.sort_unstable_by(|(a, ab), (b, bb)| {
        a.cost.cmp(&b.cost).then(b.score.cmp(&a.score)).then((a.rank, ab.option).cmp(&(b.rank, bb.option)))
    });
    let mut kept: Vec<(State, Back)> = Vec::new();
    for c in candidates {
        if kept.last().is_none_or(|k| c.0.score > k.0.score) {
            kept.push(c);
        }
    }
    rerank(&mut kept);
    kept.into_iter().unzip()
}

/// Replaces each kept state's prefix rank with its own: prefix rank, then option, is lexicographic order.
fn rerank(kept: &mut [(State, Back)]) {
    let mut order: Vec<usize> = (0..kept.len()).collect();
    order.sort_unstable_by_key(|&i| (kept[i].0.rank, kept[i].1.option));
    for (rank, i) in order.into_iter().enumerate() {
        kept[i].0.rank = rank;
    }
}

/// The option positions of final state `state`, read back through the layers.
fn positions(backs: &[Vec<Back>], mut state: usize) -> Vec<usize> {
    let mut out = vec![0; backs.len()];
    for (layer, back) in backs.iter().enumerate().rev() {
        let b = back[state];
        out[layer] = b.option;
        state = b.prev;
    }
    out
}

const SVG_W: f64 = 640.0;
const SVG_H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 56.0;
const FONT: f64 = 11.0;
const FRONT_COLOUR: &str = "#3b528b";
const ARGMAX_COLOUR: &str = "#fde725";
const CHOSEN_COLOUR: &str = "#d62728";

/// The front as a picture: cost on x (in the unit `cost_label` names), score on y, the best score within each
/// budget as a staircase through the points, and the argmax and a chosen architecture marked.
pub fn front_svg(front: &[Selection], argmax: &Selection, chosen: Option<&Selection>, cost_label: &str) -> String {
    let shown = || front.iter().chain([argmax]).chain(chosen);
    let x = Axis::fit(shown().map(|s| s.cost), LEFT, SVG_W - RIGHT);
    let y = Axis::fit(shown().map(|s| s.score), SVG_H - BOTTOM, TOP);
    let mut pic = Svg::new(SVG_W, SVG_H);
    draw_axes(&mut pic, &x, &y, cost_label);
    if let Some(stairs) = staircase(front, &x, &y) {
        pic.add(stairs);
    }
    for s in front {
        let dot = svg::circle(x.at(s.cost), y.at(s.score), 3.5).attr("fill", FRONT_COLOUR);
        pic.add(described(dot, "front-point", s, cost_label));
    }
    let diamond = diamond(x.at(argmax.cost), y.at(argmax.score), 7.0).attr("fill", ARGMAX_COLOUR);
    pic.add(described(diamond.attr("stroke", "#000000"), "argmax", argmax, cost_label));
    if let Some(c) = chosen {
        pic.add(described(ring(x.at(c.cost), y.at(c.score)), "chosen", c, cost_label));
    }
    legend(&mut pic, chosen.is_some());
    pic.finish()
}

/// A value range mapped onto a span of pixels, with round tick steps.
struct Axis {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
    step: f64,
}

impl Axis {
    fn fit(values: impl Iterator<Item = f64>, from: f64, to: f64) -> Axis {
        let finite = values.filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = match (lo, hi) {
            (lo, hi) if lo > hi => (0.0, 1.0),
            (lo, hi) if lo == hi => (lo - lo.abs().max(1.0) * 0.1, hi + hi.abs().max(1.0) * 0.1),
            // A margin keeps the extreme markers off the frame.
            (lo, hi) => (lo - (hi - lo) * 0.04, hi + (hi - lo) * 0.04),
        };
        let step = nice_step((hi - lo) / 5.0);
        Axis { lo: (lo / step).floor() * step, hi: (hi / step).ceil() * step, from, to, step }
    }

    fn at(&self, v: f64) -> f64 {
        self.from + (v - self.lo) / (self.hi - self.lo) * (self.to - self.from)
    }

    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = ((self.hi - self.lo) / self.step).round().clamp(0.0, 20.0) as usize;
        (0..=n).map(move |i| self.lo + i as f64 * self.step)
    }

    /// A tick's label, in thousands, millions or billions where the axis reaches them, with the decimals the step
    /// needs.
    fn label(&self, v: f64) -> String {
        let reach = self.lo.abs().max(self.hi.abs());
        let (div, suffix) =
            [(1e9, "G"), (1e6, "M"), (1e3, "k")].into_iter().find(|&(d, _)| reach >= d).unwrap_or((1.0, ""));
        let decimals = (-(self.step / div).log10().floor()).clamp(0.0, 6.0) as usize;
        format!("{:.*}{suffix}", decimals, v / div)
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let mantissa = raw / magnitude;
    let nice = [1.0, 2.0, 5.0].into_iter().find(|&n| mantissa <= n).unwrap_or(10.0);
    nice * magnitude
}

fn draw_axes(pic: &mut Svg, x: &Axis, y: &Axis, cost_label: &str) {
    let grid = |el: El| el.attr("stroke", "#e0e0e0").num("stroke-width", 0.6);
    for v in x.ticks() {
        pic.add(grid(svg::line(x.at(v), y.to, x.at(v), y.from)));
        pic.add(svg::text(x.at(v), y.from + 16.0, FONT, &x.label(v)).attr("text-anchor", "middle"));
    }
    for v in y.ticks() {
        pic.add(grid(svg::line(x.from, y.at(v), x.to, y.at(v))));
        pic.add(svg::text(x.from - 6.0, y.at(v) + FONT * 0.35, FONT, &y.label(v)).attr("text-anchor", "end"));
    }
    let frame = svg::rect(x.from, y.to, x.to - x.from, y.from - y.to).attr("fill", "none");
    pic.add(frame.attr("stroke", "#555555").num("stroke-width", 0.8));
    let centre = (x.from + x.to) / 2.0;
    pic.add(svg::text(centre, SVG_H - 14.0, 12.0, cost_label).attr("text-anchor", "middle").attr("class", "x-label"));
    let (ly, lx) = ((y.from + y.to) / 2.0, 18.0);
    let rotate = format!("rotate(-90 {} {})", svg::num(lx), svg::num(ly));
    let y_label = svg::text(lx, ly, 12.0, "score: Σ ln(share of layer importance)");
    pic.add(y_label.attr("text-anchor", "middle").attr("transform", &rotate).attr("class", "y-label"));
}

/// The best score within each budget: flat until the next point's cost, then up to its score.
fn staircase(front: &[Selection], x: &Axis, y: &Axis) -> Option<El> {
    let (first, rest) = front.split_first()?;
    let mut d = PathData::default().move_to(x.at(first.cost), y.at(first.score));
    let mut level = first.score;
    for s in rest {
        d = d.line_to(x.at(s.cost), y.at(level)).line_to(x.at(s.cost), y.at(s.score));
        level = s.score;
    }
    d = d.line_to(x.to, y.at(level));
    Some(svg::path(&d).attr("stroke", FRONT_COLOUR).num("stroke-width", 1.2).attr("class", "staircase"))
}

/// A marker with its class and a tooltip naming the architecture.
fn described(marker: El, class: &str, s: &Selection, cost_label: &str) -> El {
    let tip = format!("{class}: cost {} {cost_label}, score {:.4}, ids {:?}", s.cost, s.score, s.ids);
    marker.attr("class", class).child(El::new("title").text(&tip))
}

fn diamond(cx: f64, cy: f64, r: f64) -> El {
    let d = PathData::default().move_to(cx, cy - r).line_to(cx + r, cy).line_to(cx, cy + r).line_to(cx - r, cy).close();
    svg::path(&d).num("stroke-width", 0.8)
}

fn ring(cx: f64, cy: f64) -> El {
    svg::circle(cx, cy, 8.0).attr("fill", "none").attr("stroke", CHOSEN_COLOUR).num("stroke-width", 2.0)
}

fn legend(pic: &mut Svg, chosen: bool) {
    let entries: [(El, &str); 3] = [
        (svg::circle(0.0, 0.0, 3.5).attr("fill", FRONT_COLOUR), "Pareto front (best score within each budget)"),
        (diamond(0.0, 0.0, 6.0).attr("fill", ARGMAX_COLOUR).attr("stroke", "#000000"), "argmax"),
        (ring(0.0, 0.0), "chosen"),
    ];
    let (mut at, y) = (LEFT, 24.0);
    for (marker, label) in entries.into_iter().take(if chosen { 3 } else { 2 }) {
        let placed = format!("translate({} {})", svg::num(at + 8.0), svg::num(y));
        pic.add(marker.attr("transform", &placed));
        pic.add(svg::text(at + 20.0, y + FONT * 0.35, FONT, label));
        at += 20.0 + svg::text_width(label, FONT, false) + 18.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn layer(options: &[(f64, f64)]) -> Layer {
        let choice = |(k, &(importance, cost)): (usize, &(f64, f64))| Choice { id: k as i8, importance, cost };
        Layer { options: options.iter().enumerate().map(choice).collect() }
    }

    /// Small integer importances tie often; integer costs from a few values, or dyadic fractions, add exactly in
    /// `f64`, so the brute force can sum them plainly.
    fn random_layers(rng: &mut ChaCha8Rng) -> Vec<Layer> {
        let (few_importances, few_costs, fractional) = (rng.gen_bool(0.5), rng.gen_bool(0.5), rng.gen_bool(0.3));
        let cost = |rng: &mut ChaCha8Rng| match (few_costs, fractional) {
            (true, false) => rng.gen_range(0..4) as f64 * 1e6,
            (false, false) => rng.gen_range(1_000_000..100_000_000) as f64,
            (true, true) => rng.gen_range(0..8) as f64 / 8.0,
            (false, true) => rng.gen_range(0..100_000) as f64 / 1024.0,
        };
        loop {
            let n = rng.gen_range(1..=6);
            let layers: Vec<Layer> = (0..n)
                .map(|_| {
                    let m = rng.gen_range(1..=7);
                    let options: Vec<(f64, f64)> = (0..m)
                        .map(|_| {
                            let importance =
                                if few_importances { rng.gen_range(1..=4) as f64 } else { rng.gen_range(0.01..100.0) };
                            (importance, cost(rng))
                        })
                        .collect();
                    layer(&options)
                })
                .collect();
            if layers.iter().map(|l| l.options.len()).product::<usize>() <= 3000 {
                return layers;
            }
        }
    }

    /// Every architecture in lexicographic order: positions, exact score, cost summed in `f64`.
    fn every_architecture(layers: &[Layer]) -> Vec<(Vec<usize>, i128, f64)> {
        let scores: Vec<Vec<i128>> = layers.iter().map(|l| layer_scores(&l.options)).collect();
        let mut all = vec![(Vec::new(), 0i128, 0.0)];
        for (l, s) in layers.iter().zip(&scores) {
            all = all
                .into_iter()
                .flat_map(|(p, score, cost)| {
                    (0..l.options.len()).map(move |k| {
                        let mut p = p.clone();
                        p.push(k);
                        (p, score + s[k], cost + l.options[k].cost)
                    })
                })
                .collect();
        }
        all
    }

    fn brute_best(all: &[(Vec<usize>, i128, f64)], budget: f64) -> Option<&(Vec<usize>, i128, f64)> {
        let fits = all.iter().filter(|a| a.2 <= budget);
        fits.fold(None, |best, a| match best {
            Some(b) if (a.1, -a.2) <= (b.1, -b.2) => Some(b),
            _ => Some(a),
        })
    }

    fn brute_front(all: &[(Vec<usize>, i128, f64)]) -> Vec<&(Vec<usize>, i128, f64)> {
        let mut sorted: Vec<_> = all.iter().collect();
        sorted.sort_by(|a, b| a.2.total_cmp(&b.2).then(b.1.cmp(&a.1)));
        let mut front: Vec<&(Vec<usize>, i128, f64)> = Vec::new();
        for a in sorted {
            if front.last().is_none_or(|f| a.1 > f.1) {
                front.push(a);
            }
        }
        front
    }

    fn assert_same(s: &Selection, brute: &(Vec<usize>, i128, f64), layers: &[Layer], what: &str) {
        assert_eq!(s.positions, brute.0, "{what}");
        assert_eq!(s.score, brute.1 as f64 / (1u64 << SCORE_BITS) as f64, "{what}");
        assert_eq!(s.cost, brute.2, "{what}");
        let ids: Vec<i8> = layers.iter().zip(&s.positions).map(|(l, &k)| l.options[k].id).collect();
        assert_eq!(s.ids, ids, "{what}");
        let plain: f64 = layers
            .iter()
            .zip(&s.positions)
            .map(|(l, &k)| (l.options[k].importance / l.options.iter().map(|o| o.importance).sum::<f64>()).ln())
            .sum();
        assert!((s.score - plain).abs() < 1e-9, "{what}: score {} against {plain}", s.score);
    }

    #[test]
    fn front_and_budgets_match_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        for case in 0..1000 {
            let layers = random_layers(&mut rng);
            let all = every_architecture(&layers);
            let expected = brute_front(&all);
            let front = front(&layers).unwrap();
            assert_eq!(front.points().len(), expected.len(), "case {case}");
            for (s, b) in front.points().iter().zip(&expected) {
                assert_same(s, b, &layers, &format!("case {case} front"));
            }
            let costs: Vec<f64> = expected.iter().map(|b| b.2).collect();
            let between = costs.windows(2).map(|w| (w[0] + w[1]) / 2.0);
            let budgets = costs.iter().copied().chain(between).chain([costs[0] - 1.0, f64::INFINITY, 1e300]);
            for budget in budgets {
                let what = format!("case {case} budget {budget}");
                match (brute_best(&all, budget), front.best_under(budget)) {
                    (Some(b), Ok(s)) => assert_same(s, b, &layers, &what),
                    (None, Err(SelectError::OverBudget { cheapest, .. })) => assert_eq!(cheapest, costs[0], "{what}"),
                    (b, s) => panic!("{what}: brute force {b:?}, selection {s:?}"),
                }
            }
        }
    }

    #[test]
    fn equal_ties_compare_whole_prefixes() {
        // [1, 2, 1] and [2, 1, 0] tie in cost (2) and score (the same three shares in another order); their
        // two-layer prefixes differ in cost and score, so both survive, and only comparing the whole prefixes, not
        // their last options, finds the first.
        let layers = vec![
            layer(&[(2.0, 2.0), (4.0, 2.0), (1.0, 0.0)]),
            layer(&[(1.0, 0.0), (4.0, 1.0), (2.0, 0.0)]),
            layer(&[(2.0, 1.0), (1.0, 0.0), (4.0, 2.0)]),
        ];
        let front = front(&layers).unwrap();
        let all = every_architecture(&layers);
        let expected = brute_front(&all);
        assert_eq!(front.points().len(), expected.len());
        for (s, b) in front.points().iter().zip(&expected) {
            assert_same(s, b, &layers, "front");
        }
        assert_eq!(front.points()[2].positions, vec![1, 2, 1]);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        let x = 1e6_f64;
        let layers = vec![
            layer(&[(1.0, 5.0), (3.0, 5.0), (3.0, 5.0), (2.0, 5.0)]),
            layer(&[(7.0, 1.0)]),
            layer(&[(2.0, 3.0), (2.0, 3.0), (2.0, 3.0)]),
            // Adjacent floats: their logs round to the same value, yet the second is the larger.
            layer(&[(x, 2.0), (x.next_up(), 2.0), (x, 2.0)]),
        ];
        let best = argmax(&layers).unwrap();
        assert_eq!(best.positions, vec![1, 0, 0, 1]);
        assert_eq!(best.cost, 11.0);
        assert_eq!(best_under(&layers, f64::INFINITY).unwrap(), best);
        assert_eq!(front(&layers).unwrap().points().last(), Some(&best));
    }

    #[test]
    fn unconstrained_best_is_the_argmax_when_tied_maxima_cost_the_same() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for case in 0..300 {
            let mut layers = random_layers(&mut rng);
            // Cost as a function of importance: tied options cost the same.
            for l in &mut layers {
                let per_unit = rng.gen_range(1..1000) as f64;
                l.options.iter_mut().for_each(|o| o.cost = (o.importance * per_unit).round());
            }
            assert_eq!(best_under(&layers, f64::INFINITY).unwrap(), argmax(&layers).unwrap(), "case {case}");
        }
    }

    #[test]
    fn a_cheaper_tied_maximum_beats_the_first() {
        let layers = vec![layer(&[(1.0, 1.0), (3.0, 9.0), (3.0, 4.0)])];
        let (best, max) = (best_under(&layers, f64::INFINITY).unwrap(), argmax(&layers).unwrap());
        assert_eq!((max.positions, best.positions), (vec![1], vec![2]));
        assert_eq!(best.score, max.score);
    }

    /// Greedy: from the argmax, downgrade the layer that loses the least score per unit of cost saved until the
    /// budget is met.
    fn greedy(layers: &[Layer], budget: f64) -> Vec<usize> {
        let share =
            |l: &Layer, k: usize| (l.options[k].importance / l.options.iter().map(|o| o.importance).sum::<f64>()).ln();
        let mut pos = argmax(layers).unwrap().positions;
        let cost = |pos: &[usize]| layers.iter().zip(pos).map(|(l, &k)| l.options[k].cost).sum::<f64>();
        while cost(&pos) > budget {
            let mut best: Option<(f64, usize, usize)> = None;
            for (i, l) in layers.iter().enumerate() {
                for k in 0..l.options.len() {
                    let saved = l.options[pos[i]].cost - l.options[k].cost;
                    let rate = (share(l, pos[i]) - share(l, k)) / saved;
                    if saved > 0.0 && best.is_none_or(|b| rate < b.0) {
                        best = Some((rate, i, k));
                    }
                }
            }
            let (_, i, k) = best.unwrap();
            pos[i] = k;
        }
        pos
    }

    #[test]
    fn exact_beats_greedy_downgrading() {
        // B's downgrade loses least per unit saved but saves too little, so greedy must then downgrade A as well;
        // downgrading A alone meets the budget.
        let layers = vec![layer(&[(4.0, 10.0), (1.0, 0.0)]), layer(&[(1.0, 10.0), (0.9, 9.0)])];
        let exact = best_under(&layers, 10.0).unwrap();
        let greedy = greedy(&layers, 10.0);
        assert_eq!((exact.positions.clone(), greedy.clone()), (vec![1, 0], vec![1, 1]));
        let every = every_architecture(&layers);
        let greedy_score = every.iter().find(|a| a.0 == greedy).unwrap().1 as f64 / (1u64 << SCORE_BITS) as f64;
        assert!(exact.score > greedy_score + 0.1, "{} against {greedy_score}", exact.score);
    }

    #[test]
    fn bad_input_is_an_error_naming_it() {
        let over = best_under(&[layer(&[(1.0, 5.0), (2.0, 7.0)]), layer(&[(1.0, 1.0)])], 5.5).unwrap_err();
        assert_eq!(over, SelectError::OverBudget { budget: 5.5, cheapest: 6.0 });
        assert!(over.to_string().contains("the cheapest costs 6"), "{over}");
        let cases = [
            (vec![layer(&[(1.0, 1.0)]), layer(&[])], SelectError::EmptyLayer { layer: 1 }),
            (vec![layer(&[(1.0, 1.0), (0.0, 1.0)])], SelectError::Importance { layer: 0, option: 1, value: 0.0 }),
            (vec![layer(&[(1.0, f64::INFINITY)])], SelectError::Cost { layer: 0, option: 0, value: f64::INFINITY }),
            (vec![layer(&[(1.0, 1e-300), (1.0, 1e300)])], SelectError::CostRange),
        ];
        for (layers, expected) in cases {
            assert_eq!(front(&layers).unwrap_err(), expected);
            assert_eq!(argmax(&layers).unwrap_err(), expected);
        }
        assert!(matches!(argmax(&[layer(&[(f64::NAN, 1.0)])]), Err(SelectError::Importance { .. })));
        assert_eq!(best_under(&[layer(&[(1.0, 1.0)])], f64::NAN), Err(SelectError::Budget));
        let none = front(&[]).unwrap();
        assert_eq!(none.points(), [Selection { ids: vec![], positions: vec![], score: 0.0, cost: 0.0 }]);
    }

    #[test]
    fn a_front_too_large_is_an_error() {
        // With importances e^(cost/1024) against 1, the score is cost/1024 plus a constant: no architecture
        // dominates another, so the front holds every distinct cost, 2^12 of them here.
        let power = |i: i32| 2f64.powi(i);
        let layers: Vec<Layer> = (0..12).map(|i| layer(&[(1.0, 0.0), ((power(i) / 1024.0).exp(), power(i))])).collect();
        assert_eq!(front_within(&layers, 1 << 12).unwrap().points().len(), 1 << 12);
        assert_eq!(front_within(&layers, 1000).unwrap_err(), SelectError::TooManyStates { layer: 9 });
    }

    #[test]
    fn fractional_costs_tie_when_their_exact_sums_do() {
        // 0.1 + 0.2 + 0.3 and 0.3 + 0.2 + 0.1 score the same and add to the same exact cost, but in f64 the first
        // sum comes out larger; the exact tie goes to the lexicographically first.
        let layers = vec![layer(&[(1.0, 0.1), (2.0, 0.3)]), layer(&[(1.0, 0.2)]), layer(&[(2.0, 0.3), (1.0, 0.1)])];
        let cost = |k: [usize; 3]| (0..3).map(|l| layers[l].options[k[l]].cost).sum::<f64>();
        assert!(cost([0, 0, 0]) > cost([1, 0, 1]), "summed in f64, the first is dearer");
        let front = front(&layers).unwrap();
        let positions: Vec<&[usize]> = front.points().iter().map(|s| &s.positions[..]).collect();
        assert_eq!(positions, [&[0, 0, 1][..], &[0, 0, 0], &[1, 0, 0]]);
        assert_eq!(front.points()[1].cost, 0.6);
        assert_eq!(front.best_under(0.6).unwrap().positions, vec![0, 0, 0]);
    }

    #[test]
    fn front_picture_marks_every_point() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let layers: Vec<Layer> = (0..8)
            .map(|_| {
                let options: Vec<(f64, f64)> =
                    (0..6).map(|_| (rng.gen_range(1.0..2.0), rng.gen_range(1_000_000..50_000_000) as f64)).collect();
                layer(&options)
            })
            .collect();
        let front = front(&layers).unwrap();
        let max = argmax(&layers).unwrap();
        let budget = (front.points()[0].cost + max.cost) / 2.0;
        let chosen = front.best_under(budget).unwrap();
        for (points, chosen) in [(front.points(), Some(chosen)), (&[][..], None), (&front.points()[..1], None)] {
            let text = front_svg(points, &max, chosen, "FLOPs <per image>");
            let doc = roxmltree::Document::parse(&text).unwrap();
            let count = |class: &str| doc.descendants().filter(|n| n.attribute("class") == Some(class)).count();
            assert_eq!(count("front-point"), points.len());
            assert_eq!((count("argmax"), count("chosen")), (1, chosen.iter().count()));
            assert!(text.contains("FLOPs &lt;per image&gt;"));
        }
    }
}
