//! `agnas report RUN… --out report.html`: one self-contained page (inline CSS and SVG, nothing fetched) holding, for
//! each run, its result and timing, its loss, accuracy and learning-rate curves, its pictures (importance heatmap,
//! decisions over the epochs, cells or macro architecture) and its configuration; with several runs also the
//! comparison table, the consensus and the runs' curves overlaid.
//!
//! The page is well-formed XML (polyglot XHTML), so tests read it with an XML parser.
use super::{short, Comparison, RunRow, Stat};
use crate::error::{Context, Result};
use crate::report::curves::{line_chart_svg, Series};
use crate::report::svg::escape;
use plotters::style::RGBColor;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Line colours of overlaid runs and of a run's series (Okabe–Ito, readable by colour-blind readers).
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(20, 20, 20),
];

/// Pictures drawn first, under these headings; any other SVG of a run folder is an architecture picture.
const IMPORTANCE_PICTURES: [(&str, &str); 2] = [
    ("importance.svg", "Held-out importances (attention share per decision point and candidate)"),
    ("decisions.svg", "Decisions over the epochs (bootstrap confidence, rank correlation with the previous pass)"),
];

const STYLE: &str = "
body { font-family: 'DejaVu Sans', Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f4f4f4; padding: 0 .2em; word-break: break-all; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
pre.config { column-count: 3; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: .9em; }
figure svg { max-width: 100%; height: auto; }
.charts { display: flex; flex-wrap: wrap; gap: .5em; } .charts svg { width: 500px; height: auto; }
.muted { color: #777; }
";

/// The page for the runs of `c`.
pub fn page(c: &Comparison) -> Result<String> {
    let mut figures = 0usize;
    let mut body = String::new();
    let title = format!("{} run{} ({})", c.runs.len(), if c.runs.len() == 1 { "" } else { "s" }, c.space);
    writeln!(body, "<h1>agnas report: {}</h1>", escape(&title))?;
    writeln!(body, "<p class=\"muted\">Written by agnas {}.</p>", env!("CARGO_PKG_VERSION"))?;
    let histories: Vec<History> = c.runs.iter().map(|r| History::read(&r.dir)).collect::<Result<_>>()?;
    if c.runs.len() > 1 {
        comparison(&mut body, c, &histories)?;
    }
    for (i, (run, history)) in c.runs.iter().zip(&histories).enumerate() {
        run_section(&mut body, (i, run), &headline(c), history, &mut figures)?;
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(&format!("agnas report: {title}"))
    ))
}

/// Every number of each line of a run's `metrics.jsonl`, by dotted key.
struct History {
    epochs: Vec<BTreeMap<String, f64>>,
}

impl History {
    fn read(dir: &Path) -> Result<History> {
        let path = dir.join("metrics.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let epochs = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, line)| {
                let v: serde_json::Value = serde_json::from_str(line)
                    .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
                let mut numbers = BTreeMap::new();
                crate::report::numbers(&v, "", &mut numbers);
                Ok(numbers)
            })
            .collect::<Result<_>>()?;
        Ok(History { epochs })
    }

    /// (epoch, value) of `key` where recorded.
    fn series(&self, key: &str) -> Vec<(f64, f64)> {
        self.epochs
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((e.get("epoch").copied().unwrap_or(i as f64 + 1.0), *e.get(key)?)))
            .collect()
    }

    /// The recorded keys that `pick` accepts, in order.
    fn keys(&self, pick: impl Fn(&str) -> bool) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for k in self.epochs.iter().flat_map(|e| e.keys()) {
            if pick(k) && !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        keys
    }

    fn seconds(&self) -> f64 {
        self.epochs.iter().filter_map(|e| e.get("seconds")).sum()
    }
}

/// A kind of curve drawn from the metrics: title, y axis, which keys, and a scale (accuracies are fractions).
type Curve = (&'static str, &'static str, fn(&str) -> bool, f64);

const CURVES: [Curve; 3] = [
    ("Loss", "loss", |k| k.ends_with("loss"), 1.0),
    ("Accuracy", "accuracy %", |k| k.ends_with("acc") || k.ends_with("top1") || k.ends_with("top5"), 100.0),
    ("Learning rate", "lr", |k| k == "lr", 1.0),
];

/// The held-out (search) or validation (retrain) accuracy key of a history.
fn heldout_key(h: &History) -> Option<String> {
    ["heldout_acc", "valid.top1"].into_iter().find(|k| !h.series(k).is_empty()).map(str::to_string)
}

fn chart(title: &str, y_desc: &str, series: Vec<Series>) -> Result<Option<String>> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    if points().next().is_none() {
        return Ok(None);
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points() {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let pad = ((y1 - y0) * 0.05).max(y1.abs() * 1e-3).max(1e-9);
    // A little room on the right, so that a dot at the last epoch (a one-pass series) is not cut in half.
    let x = if x1 > x0 { x0..x1 + (x1 - x0) * 0.02 } else { x0 - 0.5..x1 + 0.5 };
    let svg = line_chart_svg(title, ("epoch", x), (y_desc, (y0 - pad)..(y1 + pad)), &series)?;
    Ok(Some(strip_prolog(&svg).to_string()))
}

fn comparison(body: &mut String, c: &Comparison, histories: &[History]) -> Result<()> {
    writeln!(body, "<h2 id=\"comparison\">Comparison</h2>")?;
    let shown = c.shown(&["heldout_acc", "best_valid.top1", "confidence.architecture", "train_seconds"]);
    write!(body, "<table class=\"runs\"><tr><th>run</th><th>architecture</th>")?;
    for m in &shown {
        write!(body, "<th>{}</th>", escape(m))?;
    }
    writeln!(body, "</tr>")?;
    for (i, run) in c.runs.iter().enumerate() {
        write!(
            body,
            "<tr><td><a href=\"#run-{i}\">{}</a></td><td><code>{}</code></td>",
            escape(&label(run)),
            escape(&run.arch)
        )?;
        for m in &shown {
            let v = run.metrics.get(m).map_or("–".to_string(), |v| short(*v));
            write!(body, "<td class=\"n\">{v}</td>")?;
        }
        writeln!(body, "</tr>")?;
    }
    writeln!(body, "</table>")?;
    let headline = headline(c);
    let (headline, rest): (Vec<&Stat>, Vec<&Stat>) = c.stats.iter().partition(|s| headline.contains(&s.metric));
    stat_table(body, headline.into_iter())?;
    writeln!(body, "<details><summary>every other number of the runs' result.json</summary>")?;
    stat_table(body, rest.into_iter())?;
    writeln!(body, "</details>")?;
    if let Some(cons) = &c.consensus {
        writeln!(
            body,
            "<p>Consensus (per decision, the choice with the largest sum of the runs' confidence): <code>{}</code></p>",
            escape(&cons.arch)
        )?;
        if let Some((what, acc)) = c.consensus_benchmark() {
            writeln!(body, "<p>{what} of the consensus: {acc:.2} %</p>")?;
        }
        writeln!(body, "<table class=\"votes\"><tr><th>decision</th><th>choice</th><th>weight</th><th>of</th><th>runs agreeing</th></tr>")?;
        for v in &cons.votes {
            writeln!(
                body,
                "<tr><td>{}</td><td><code>{}</code></td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.0} %</td></tr>",
                escape(&v.point),
                escape(&v.choice),
                v.weight,
                v.total_weight,
                100.0 * v.agreement
            )?;
        }
        writeln!(body, "</table>")?;
    }
    let overlay = |key: &dyn Fn(&History) -> Option<String>, scale: f64| -> Vec<Series> {
        c.runs
            .iter()
            .zip(histories)
            .enumerate()
            .filter_map(|(i, (run, h))| {
                let points = h.series(&key(h)?).into_iter().map(|(x, y)| (x, y * scale)).collect();
                Some(Series { label: Some(label(run)), points, colour: PALETTE[i % PALETTE.len()], width: 2 })
            })
            .collect()
    };
    let charts = [
        chart("Training loss, every run", "loss", overlay(&|_| Some("train_loss".into()), 1.0))?,
        chart("Held-out / validation accuracy, every run", "accuracy %", overlay(&heldout_key, 100.0))?,
    ];
    charts_div(body, charts.into_iter().flatten())
}

fn stat_table<'a>(body: &mut String, stats: impl Iterator<Item = &'a Stat>) -> Result<()> {
    writeln!(body, "<table class=\"stats\"><tr><th>metric</th><th>runs</th><th>mean</th><th>std</th></tr>")?;
    for s in stats {
        writeln!(
            body,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&s.metric),
            s.n,
            short(s.mean),
            short(s.std)
        )?;
    }
    writeln!(body, "</table>")?;
    Ok(())
}

fn charts_div(body: &mut String, charts: impl Iterator<Item = String>) -> Result<()> {
    writeln!(body, "<div class=\"charts\">")?;
    for svg in charts {
        writeln!(body, "{svg}")?;
    }
    writeln!(body, "</div>")?;
    Ok(())
}

/// The run as the user named it (its folder), for headings and legends.
fn label(run: &RunRow) -> String {
    run.dir.display().to_string()
}

fn run_section(
    body: &mut String,
    (i, run): (usize, &RunRow),
    headline: &[String],
    h: &History,
    figures: &mut usize,
) -> Result<()> {
    writeln!(body, "<section id=\"run-{i}\">\n<h2>{}</h2>", escape(&label(run)))?;
    if !run.arch.is_empty() {
        writeln!(body, "<p>Architecture: <code>{}</code></p>", escape(&run.arch))?;
    }
    writeln!(body, "<h3>Result</h3>")?;
    let headline: Vec<(&String, &f64)> = run.metrics.iter().filter(|(k, _)| headline.contains(k)).collect();
    if !headline.is_empty() {
        metric_table(body, "headline", headline.into_iter())?;
    }
    writeln!(body, "<details><summary>every number of result.json</summary>")?;
    metric_table(body, "result", run.metrics.iter())?;
    writeln!(body, "</details>")?;
    let seconds = h.seconds();
    if !h.epochs.is_empty() {
        writeln!(
            body,
            "<h3>Timing</h3>\n<p>{} epochs, {} s in all ({} s per epoch on average).</p>",
            h.epochs.len(),
            short(seconds),
            short(seconds / h.epochs.len() as f64)
        )?;
    }
    let mut charts = Vec::new();
    for (title, y_desc, pick, scale) in CURVES {
        let series = h
            .keys(pick)
            .into_iter()
            .enumerate()
            .map(|(j, k)| Series {
                points: h.series(&k).into_iter().map(|(x, y)| (x, y * scale)).collect(),
                label: Some(k),
                colour: PALETTE[j % PALETTE.len()],
                width: 2,
            })
            .collect();
        charts.extend(chart(title, y_desc, series)?);
    }
    if !charts.is_empty() {
        writeln!(body, "<h3>Curves</h3>")?;
        charts_div(body, charts.into_iter())?;
    }
    pictures(body, &run.dir, figures)?;
    let config = run.dir.join(crate::report::CONFIG_FILE);
    if let Ok(text) = std::fs::read_to_string(&config) {
        writeln!(body, "<h3>Configuration</h3>\n<pre class=\"config\">{}</pre>", escape(&text))?;
    }
    writeln!(body, "</section>")?;
    Ok(())
}

/// What a run is judged by, shown before the rest of its numbers: the benchmark's headline metrics, then these.
fn headline(c: &Comparison) -> Vec<String> {
    let benchmark = c.benchmark.map(|b| b.paths()).unwrap_or_default();
    benchmark.into_iter().chain(HEADLINE.iter().map(|m| m.to_string())).collect()
}

const HEADLINE: [&str; 6] =
    ["heldout_acc", "best_valid.top1", "test.top1", "confidence.architecture", "params", "train_seconds"];

fn metric_table<'a>(body: &mut String, class: &str, rows: impl Iterator<Item = (&'a String, &'a f64)>) -> Result<()> {
    writeln!(body, "<table class=\"{class}\"><tr><th>metric</th><th>value</th></tr>")?;
    for (k, v) in rows {
        writeln!(body, "<tr><td>{}</td><td class=\"n\">{}</td></tr>", escape(k), short(*v))?;
    }
    writeln!(body, "</table>")?;
    Ok(())
}

/// The run's SVG pictures, inlined: the importance pictures first, then the architecture's.
fn pictures(body: &mut String, dir: &Path, figures: &mut usize) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".svg"))
        .collect();
    names.sort();
    let architecture: Vec<(String, String)> = names
        .iter()
        .filter(|n| IMPORTANCE_PICTURES.iter().all(|(p, _)| p != n))
        .map(|n| (n.clone(), n.trim_end_matches(".svg").replace('_', " ")))
        .collect();
    let importance: Vec<(String, String)> = IMPORTANCE_PICTURES
        .iter()
        .filter(|(p, _)| names.iter().any(|n| n == p))
        .map(|(p, caption)| (p.to_string(), caption.to_string()))
        .collect();
    for (heading, list) in [("Importances", importance), ("Architecture", architecture)] {
        if list.is_empty() {
            continue;
        }
        writeln!(body, "<h3>{heading}</h3>")?;
        for (name, caption) in list {
            let path = dir.join(&name);
            let svg = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            *figures += 1;
            writeln!(
                body,
                "<figure>\n{}\n<figcaption>{} <span class=\"muted\">({})</span></figcaption>\n</figure>",
                scope_ids(strip_prolog(&svg), &format!("f{figures}-")),
                escape(&caption),
                escape(&name)
            )?;
        }
    }
    Ok(())
}

/// The SVG element without an XML declaration or doctype before it, which may not appear inside a page.
fn strip_prolog(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

/// `svg` with its element ids prefixed, so that two inlined pictures defining the same id (two cells' arrow
/// markers) keep their own.
fn scope_ids(svg: &str, prefix: &str) -> String {
    let mut ids = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find(" id=\"") {
        rest = &rest[i + 5..];
        if let Some(end) = rest.find('"') {
            ids.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    let mut out = svg.to_string();
    for id in ids {
        for (from, to) in [("id=\"", "id=\""), ("url(#", "url(#"), ("href=\"#", "href=\"#")] {
            let close = if from == "url(#" { ")" } else { "\"" };
            out = out.replace(&format!("{from}{id}{close}"), &format!("{to}{prefix}{id}{close}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_scoped_with_their_references() {
        let svg =
            r##"<svg><defs><marker id="arrow"/></defs><path marker-end="url(#arrow)"/><use href="#arrow"/></svg>"##;
        let scoped = scope_ids(svg, "f1-");
        assert_eq!(
            scoped,
            r##"<svg><defs><marker id="f1-arrow"/></defs><path marker-end="url(#f1-arrow)"/><use href="#f1-arrow"/></svg>"##
        );
        assert_eq!(strip_prolog("<?xml version=\"1.0\"?>\n<svg/>"), "<svg/>");
    }
}
