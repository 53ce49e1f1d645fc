//! Several runs side by side: the mean ± std of every metric their `result.json` files share, and for searches the
//! consensus architecture, a per-decision vote weighted by each run's confidence.
pub mod html;

use crate::config::{self, Recipe};
use crate::error::{ensure, Context, Result};
use crate::report;
use crate::search::{self, SearchResult};
use crate::space::{Benchmark, GenotypeFormat, Space};
use crate::train::{Begin, Finished, Launch, RunConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The prefix of the sub-folders `agnas search --seeds` makes, one per seed.
pub const SEED_FOLDER: &str = "seed-";

/// The run folder of `seed` in a multi-seed folder.
pub fn seed_folder(parent: &Path, seed: u64) -> PathBuf {
    parent.join(format!("{SEED_FOLDER}{seed}"))
}

/// Run folders from what a user names: a run folder, or a multi-seed folder standing for its `seed-*` runs.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut runs = Vec::new();
    for path in paths {
        if path.join("result.json").exists() || path.join(crate::report::CONFIG_FILE).exists() {
            runs.push(path.clone());
            continue;
        }
        let mut seeds: Vec<(u64, PathBuf)> = std::fs::read_dir(path)
            .with_context(|| format!("{} is no run folder", path.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let seed = name.strip_prefix(SEED_FOLDER)?.parse().ok()?;
                Some((seed, e.path()))
            })
            .collect();
        ensure!(!seeds.is_empty(), "{} holds neither a run nor {SEED_FOLDER}* runs", path.display());
        seeds.sort();
        runs.extend(seeds.into_iter().map(|(_, p)| p));
    }
    Ok(runs)
}

/// One run's line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub dir: PathBuf,
    pub arch: String,
    /// Every number of `result.json` outside lists, by its dotted path (`bench201.c10_test`).
    pub metrics: BTreeMap<String, f64>,
}

/// Mean and sample standard deviation of one metric over the runs that have it.
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub metric: String,
    pub n: usize,
    pub mean: f64,
    pub std: f64,
}

/// The choice of one decision point that the runs' confidence-weighted votes elect.
#[derive(Debug, Clone, Serialize)]
pub struct Vote {
    pub point: String,
    pub choice: String,
    /// Σ of the confidences of the runs that chose it, and of all runs.
    pub weight: f64,
    pub total_weight: f64,
    /// Share of the runs that chose it.
    pub agreement: f64,
}

/// The architecture the runs agree on.
#[derive(Debug, Clone, Serialize)]
pub struct Consensus {
    pub arch: String,
    /// The first run (index into `runs`) that made every one of these choices.
    pub run: Option<usize>,
    pub votes: Vec<Vote>,
    /// What a benchmark table records of it.
    pub record: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub space: String,
    /// The space's benchmark table, whose headline metrics lead the tables.
    #[serde(skip)]
    pub benchmark: Option<Benchmark>,
    pub runs: Vec<RunRow>,
    pub stats: Vec<Stat>,
    pub consensus: Option<Consensus>,
}

/// How one seed of [`search_seeds`] goes.
#[derive(Debug)]
pub enum Seed<'a> {
    /// Its folder holds a finished search, kept as it is.
    FinishedBefore(&'a Path),
    /// Its search starts or resumes.
    Starting,
    /// Its search finished in the folder.
    Found(&'a Finished<SearchResult>),
}

/// One search per seed into `seed-<n>` folders of one folder (finished ones kept, stopped ones resumed), then their
/// comparison (on rank 0), also written there as `report.json` and `report.md`; `each` hears how every seed goes.
pub fn search_seeds<S: Space>(
    recipe: &Recipe,
    seeds: &[u64],
    launch: Launch,
    each: &mut dyn FnMut(u64, Seed),
) -> Result<Finished<Option<Comparison>>> {
    let config = search::config::<S>(recipe)?;
    let Begin::New { out } = &launch.begin else {
        crate::error::bail!("a search of several seeds resumes by running it again with the same --out");
    };
    let dist = &launch.dist;
    let parent =
        dist.from_root(Ok(out.clone().unwrap_or_else(|| crate::train::default_out(&format!("{}-seeds", S::NAME)))))?;
    for &seed in seeds {
        let out = seed_folder(&parent, seed);
        // Rank 0 looks at the folders; the others follow.
        let (finished, begun) =
            dist.from_root(Ok((out.join("result.json").exists(), out.join(crate::report::CONFIG_FILE).exists())))?;
        if finished {
            each(seed, Seed::FinishedBefore(&out));
            continue;
        }
        each(seed, Seed::Starting);
        let start = if begun {
            crate::train::Start::Resume { dir: out.clone(), machine: config::Overrides::default() }
        } else {
            crate::train::Start::New { config: config::SearchConfig { seed, ..config.clone() }, out: out.clone() }
        };
        let result = search::run::<S>(search::SearchRun {
            start,
            progress: launch.progress,
            stop_after_steps: launch.stop_after_steps,
            dist: dist.clone(),
        })?;
        each(seed, Seed::Found(&Finished { result, out }));
    }
    let dirs: Vec<PathBuf> = seeds.iter().map(|&s| seed_folder(&parent, s)).collect();
    if !dist.is_root() {
        return Ok(Finished { result: None, out: parent });
    }
    let comparison = compare::<S>(&dirs)?;
    crate::report::write_json(&parent.join("report.json"), &comparison)?;
    crate::report::atomic_write(&parent.join("report.md"), comparison.markdown().as_bytes())?;
    Ok(Finished { result: Some(comparison), out: parent })
}

/// The runs in `dirs` (finished runs of the space `S`) compared.
pub fn compare<S: Space>(dirs: &[PathBuf]) -> Result<Comparison> {
    ensure!(!dirs.is_empty(), "no run to report on");
    let results: Vec<serde_json::Value> = dirs.iter().map(|d| read_result(d)).collect::<Result<_>>()?;
    let runs: Vec<RunRow> = dirs
        .iter()
        .zip(&results)
        .map(|(dir, r)| {
            let mut metrics = BTreeMap::new();
            report::numbers(r, "", &mut metrics);
            RunRow { dir: dir.clone(), arch: r["arch"].as_str().unwrap_or("").to_string(), metrics }
        })
        .collect();
    let consensus = if results.iter().all(|r| r["confidence"]["decisions"].is_array()) {
        let cfg = crate::config::SearchConfig::<S>::load(&dirs[0].join(crate::report::CONFIG_FILE))?;
        let mut c = consensus::<S>(&cfg.supernet, &results)?;
        // A choice names a decision, not the order a run listed it in (a DARTS node's two inputs come in input
        // order), so a consensus that is some run's architecture is shown as that run wrote it.
        if let Some(i) = c.run {
            let file = dirs[i].join("genotype.json");
            c.arch = S::Genotype::parse(&file.to_string_lossy())?.text().trim_end().to_string();
        }
        Some(c)
    } else {
        None
    };
    Ok(Comparison {
        space: S::NAME.to_string(),
        benchmark: S::benchmark().map(|b| b.about()),
        stats: stats(&runs),
        runs,
        consensus,
    })
}

fn read_result(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("result.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (has the run finished?)", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn stats(runs: &[RunRow]) -> Vec<Stat> {
    let mut by_metric: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for run in runs {
        for (k, &v) in &run.metrics {
            by_metric.entry(k).or_default().push(v);
        }
    }
    by_metric
        .into_iter()
        .map(|(metric, values)| {
            let n = values.len();
            let mean = values.iter().sum::<f64>() / n as f64;
            let var = if n > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
            Stat { metric: metric.to_string(), n, mean, std: var.sqrt() }
        })
        .collect()
}

/// Per decision point, the choice with the largest sum of the confidences of the runs that made it (a run without
/// a bootstrap votes with weight 1; ties go to the choice more runs made, then to the earlier run's).
fn consensus<S: Space>(cfg: &S::Supernet, results: &[serde_json::Value]) -> Result<Consensus> {
    let decisions: Vec<&Vec<serde_json::Value>> =
        results.iter().map(|r| r["confidence"]["decisions"].as_array().expect("checked")).collect();
    let points = decisions[0].len();
    ensure!(decisions.iter().all(|d| d.len() == points), "the runs have different numbers of decisions");
    let mut votes = Vec::with_capacity(points);
    for i in 0..points {
        let point = decisions[0][i]["point"].as_str().unwrap_or("").to_string();
        // (choice, weight, runs) in order of first appearance.
        let mut tally: Vec<(String, f64, usize)> = Vec::new();
        for run in &decisions {
            let d = &run[i];
            ensure!(d["point"].as_str() == Some(&point), "the runs' decisions differ at {point}");
            let choice = d["choice"].as_str().context("a decision without a choice")?;
            let weight = d["confidence"].as_f64().unwrap_or(1.0);
            match tally.iter_mut().find(|t| t.0 == choice) {
                Some(t) => {
                    t.1 += weight;
                    t.2 += 1;
                }
                None => tally.push((choice.to_string(), weight, 1)),
            }
        }
        let total_weight = tally.iter().map(|t| t.1).sum();
        let best = tally
            .iter()
            .reduce(|best, t| if (t.1, t.2) > (best.1, best.2) { t } else { best })
            .expect("at least one run");
        votes.push(Vote {
            point,
            choice: best.0.clone(),
            weight: best.1,
            total_weight,
            agreement: best.2 as f64 / decisions.len() as f64,
        });
    }
    let choices: Vec<&str> = votes.iter().map(|v| v.choice.as_str()).collect();
    let genotype = S::from_choices(cfg, &choices)?;
    let made_all =
        |run: &&Vec<serde_json::Value>| run.iter().zip(&choices).all(|(d, c)| d["choice"].as_str() == Some(c));
    Ok(Consensus {
        arch: genotype.text().trim_end().to_string(),
        run: decisions.iter().position(made_all),
        record: S::benchmark().and_then(|b| b.record(&genotype)),
        votes,
    })
}

impl Comparison {
    /// The columns of the runs' table: the benchmark's first headline metric, then `rest`, where any run has them.
    pub fn shown(&self, rest: &[&str]) -> Vec<String> {
        let first = self.benchmark.and_then(|b| b.paths().into_iter().next());
        first
            .into_iter()
            .chain(rest.iter().map(|m| m.to_string()))
            .filter(|m| self.runs.iter().any(|r| r.metrics.contains_key(m)))
            .collect()
    }

    /// The benchmark's first headline metric of the consensus, and its words.
    pub fn consensus_benchmark(&self) -> Option<(&'static str, f64)> {
        let b = self.benchmark?;
        Some((b.described, b.first(self.consensus.as_ref()?.record.as_ref()?)?))
    }

    /// The comparison as Markdown: the runs, the statistics, the consensus.
    pub fn markdown(&self) -> String {
        let shown = self.shown(&["heldout_acc", "confidence.architecture", "train_seconds", "epochs"]);
        let runs = if self.runs.len() == 1 { "run" } else { "runs" };
        let mut s = format!("# {} {runs} ({})\n\n| run | architecture |", self.runs.len(), self.space);
        for m in &shown {
            s.push_str(&format!(" {m} |"));
        }
        s.push_str(&format!("\n|---|---|{}\n", "---:|".repeat(shown.len())));
        for run in &self.runs {
            // A pipe inside a cell ends it, even between backticks.
            s.push_str(&format!("| {} | `{}` |", run.dir.display(), run.arch.replace('|', "\\|")));
            for m in &shown {
                s.push_str(&run.metrics.get(m).map_or(" – |".to_string(), |v| format!(" {} |", short(*v))));
            }
            s.push('\n');
        }
        s.push_str("\n| metric | runs | mean | std |\n|---|---:|---:|---:|\n");
        for st in &self.stats {
            // One run has no spread to show.
            let std = if st.n > 1 { short(st.std) } else { "–".to_string() };
            s.push_str(&format!("| {} | {} | {} | {std} |\n", st.metric, st.n, short(st.mean)));
        }
        if let Some(c) = &self.consensus {
            s.push_str(&format!(
                "\nConsensus (per decision, the choice with the largest sum of the runs' confidence): `{}`\n",
                c.arch
            ));
            if let Some((what, acc)) = self.consensus_benchmark() {
                s.push_str(&format!("\n{what} of the consensus: {acc:.2} %\n"));
            }
            s.push_str("\n| decision | choice | weight | of | runs agreeing |\n|---|---|---:|---:|---:|\n");
            for v in &c.votes {
                s.push_str(&format!(
                    "| {} | `{}` | {:.2} | {:.2} | {:.0} % |\n",
                    v.point,
                    v.choice,
                    v.weight,
                    v.total_weight,
                    100.0 * v.agreement
                ));
            }
        }
        s
    }
}

/// A number with four significant digits (integers whole), no exponent for everyday magnitudes.
fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if (1e-3..1e6).contains(&v.abs()) {
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_use_the_sample_deviation() {
        let row = |v: f64| RunRow { dir: PathBuf::new(), arch: String::new(), metrics: [("m".into(), v)].into() };
        let s = &stats(&[row(1.0), row(2.0), row(3.0), row(4.0)])[0];
        assert_eq!((s.n, s.mean), (4, 2.5));
        assert!((s.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(short(93.4167), "93.42");
        assert_eq!(short(0.0), "0");
        assert_eq!((short(3.0), short(0.5)), ("3".to_string(), "0.5000".to_string()));
    }

    /// A report of one run says so, and shows no spread for it.
    #[test]
    fn one_run_is_one_run_without_a_deviation() {
        let row = RunRow { dir: PathBuf::from("r"), arch: "a".into(), metrics: [("m".into(), 2.0)].into() };
        let stats = stats(std::slice::from_ref(&row));
        let c = Comparison { space: "nb201".into(), benchmark: None, runs: vec![row], stats, consensus: None };
        let md = c.markdown();
        assert!(md.starts_with("# 1 run (nb201)"), "{md}");
        assert!(md.contains("| m | 1 | 2 | – |"), "{md}");
    }

    #[test]
    fn the_vote_weighs_confidence_over_headcount() {
        let run = |choices: [(&str, f64); 6]| {
            let decisions: Vec<serde_json::Value> = choices
                .iter()
                .enumerate()
                .map(|(i, (c, p))| serde_json::json!({"point": format!("edge {i}"), "choice": c, "confidence": p}))
                .collect();
            serde_json::json!({"confidence": {"decisions": decisions}})
        };
        let conv = [("nor_conv_3x3", 1.0); 6];
        let mut a = conv;
        a[0] = ("skip_connect", 0.4);
        let mut b = conv;
        b[0] = ("skip_connect", 0.4);
        // Two unsure runs pick skip on edge 0 (0.8 in all), one sure run conv (1.0): conv wins.
        let c = consensus::<crate::space::nb201::Nb201>(&Default::default(), &[run(a), run(b), run(conv)]).unwrap();
        assert_eq!(c.votes[0].choice, "nor_conv_3x3");
        assert!((c.votes[0].agreement - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.votes[1].agreement, 1.0);
        assert_eq!(c.run, Some(2), "the sure run made every elected choice");
        assert_eq!(
            c.arch,
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
        );
        assert!(c.record.unwrap()["c10_test"].as_f64().unwrap() > 90.0);
    }
}
