//! Random search at equal cost: architectures drawn uniformly from what the search could derive, each trained
//! briefly from scratch on the search's own training images and validated on its held-out images, until a wall-clock
//! budget is spent; the best on validation wins. Unlike the table-lookup "random search" of papers it pays for every
//! architecture it ranks.
use crate::config::settings::{Kind, Setting};
use crate::config::{Preset, Recipe, RetrainConfig, SearchConfig, SpaceSections};
use crate::data::DataConfig;
use crate::dist::Dist;
use crate::error::{ensure, Context, Result};
use crate::report::{self, progress::ProgressMode, write_json, write_jsonl, CONFIG_FILE};
use crate::retrain::{self, RetrainRun};
use crate::search::SearchResult;
use crate::space::{GenotypeFormat, Space};
use crate::train::{Finished, Launch, RunConfig, Start};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `agnas baseline random` runs; written as the folder's `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub struct BaselineConfig<S: SpaceSections> {
    pub space: String,
    /// Seeds the draws; every candidate trains from the same initialisation seed (`candidate.seed`).
    pub seed: u64,
    /// Wall-clock minutes for all candidates: no candidate starts that the mean so far says would end past it.
    pub budget_minutes: f64,
    /// At most this many candidates (0 = as many as the budget allows).
    pub max_candidates: usize,
    /// The space the architectures are drawn from: the search's `[supernet]` and `[derive]`.
    pub supernet: S::Supernet,
    pub derive: S::Derive,
    /// How every candidate trains (its `genotype` is set per candidate).
    pub candidate: RetrainConfig<S>,
}

/// Settings of a random search beside those of its candidates' runs (under `candidate.`).
pub const BASELINE_SETTINGS: &[Setting] = &[
    Setting::new("budget_minutes", "budget-minutes", Kind::Float, "Wall-clock minutes for all candidates."),
    Setting::new(
        "max_candidates",
        "max-candidates",
        Kind::Int,
        "Stop after this many candidates even with budget left (0 = as many as the budget allows).",
    ),
];

/// At most this many epochs per candidate unless set: the short schedule by whose validation accuracy NAS-Bench-201's
/// own random search ranks architectures (its `hp = 12` results). A full retrain recipe (200 epochs for NB201's paper
/// preset) would spend any budget on its first candidate.
pub const BRIEF_EPOCHS: usize = 12;

impl<S: Space> BaselineConfig<S> {
    /// The random search beside the search preset `preset`: the same images, split and space, and candidates
    /// trained with the space's retrain recipe at that preset's scale, for at most [`BRIEF_EPOCHS`].
    pub fn preset(preset: Preset, budget_minutes: f64) -> Self {
        let search = S::search_preset(preset);
        let mut candidate = RetrainConfig { data: search.data.clone(), seed: search.seed, ..S::retrain_preset(preset) };
        candidate.train.epochs = candidate.train.epochs.min(BRIEF_EPOCHS);
        BaselineConfig {
            space: S::NAME.to_string(),
            seed: search.seed,
            budget_minutes,
            max_candidates: 0,
            supernet: search.supernet,
            derive: search.derive,
            candidate,
        }
    }
}

impl<S: SpaceSections> BaselineConfig<S> {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.space == S::NAME, "space = \"{}\" in a configuration of the {} space", self.space, S::NAME);
        ensure!(
            self.budget_minutes.is_finite() && self.budget_minutes >= 0.0,
            "budget_minutes must be a number of minutes >= 0, got {}",
            self.budget_minutes
        );
        ensure!(self.candidate.data.split < 1.0, "candidate.data.split must leave validation images (< 1)");
        self.candidate.validate()
    }
}

/// One candidate: `candidates.jsonl` holds one per line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    pub index: usize,
    pub arch: String,
    /// Top-1 accuracy of its last epoch on the validation images.
    pub valid_acc: f64,
    /// Wall-clock seconds it took, data loading included.
    pub seconds: f64,
}

/// What a finished random search reports (`result.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineResult {
    pub space: String,
    pub arch: String,
    pub seed: u64,
    pub candidates: usize,
    pub valid_acc: f64,
    pub train_seconds: f64,
    pub budget_minutes: f64,
    /// The share of the pick's ops without parameters, as a search reports it of its decisions.
    #[serde(default)]
    pub parameter_free_share: f64,
    /// What the space's benchmark table records of the chosen architecture, under the key a search's `result.json`
    /// uses for it ([`crate::space::Benchmark::key`]).
    #[serde(flatten)]
    pub benchmark: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A random search's configuration: preset ← file ← flags (the candidates' run flags set `candidate.*`), on the
/// recipe's images.
pub fn config<S: Space>(recipe: &Recipe) -> Result<BaselineConfig<S>> {
    let mut c = recipe.layered(|p| BaselineConfig::<S>::preset(p, 0.0))?;
    c.seed = c.candidate.seed;
    if let Some(data) = recipe.data {
        c.candidate.data.path = Some(data.to_path_buf());
    }
    Ok(c)
}

/// The random search a command asks for, its budget given (`budget_minutes`, a configuration file) or that of the
/// finished search `budget_of`.
pub fn launch<S: Space>(recipe: &Recipe, budget_of: Option<&Path>, launch: Launch) -> Result<Finished<BaselineResult>> {
    let start = launch.begin.start(|| {
        let budget = recipe.given.get("budget_minutes").is_some() || budget_of.is_some();
        ensure!(budget || recipe.file.is_some(), "give the budget: --budget-minutes or --budget-of RUN");
        let mut c = config::<S>(recipe)?;
        if let Some(run) = budget_of {
            c.budget_minutes = self::budget_of::<S>(run, &c.candidate.data, c.seed).context("--budget-of")? / 60.0;
            tracing::info!("budget: {:.1} min, the time of the search in {}", c.budget_minutes, run.display());
        }
        let name = format!("random-{}-seed{}", S::NAME, c.seed);
        Ok((c, name))
    })?;
    let out = start.out().to_path_buf();
    let result = random::<S>(start, launch.progress)?;
    Ok(Finished { result, out })
}

/// Runs (or resumes) a random search; returns what it also writes to `<out>/result.json`.
pub fn random<S: Space>(start: Start<BaselineConfig<S>>, progress: ProgressMode) -> Result<BaselineResult> {
    let (cfg, out, claimed) = open(start)?;
    let log = out.join("candidates.jsonl");
    let mut done = read_candidates(&log)?;
    let budget = cfg.budget_minutes * 60.0;
    loop {
        let spent: f64 = done.iter().map(|c| c.seconds).sum();
        let mean = if done.is_empty() { 0.0 } else { spent / done.len() as f64 };
        let capped = cfg.max_candidates > 0 && done.len() >= cfg.max_candidates;
        if capped || (!done.is_empty() && spent + mean > budget) {
            break;
        }
        let candidate = match train_candidate::<S>(&cfg, &out, done.len(), progress) {
            Ok(candidate) => candidate,
            Err(e) => {
                if let (true, Some(created)) = (done.is_empty(), claimed) {
                    release_unstarted(&out, created);
                }
                return Err(e);
            }
        };
        tracing::info!(
            "candidate {}: {} validation accuracy {:.2} % ({:.0} s)",
            candidate.index,
            candidate.arch,
            100.0 * candidate.valid_acc,
            candidate.seconds
        );
        done.push(candidate);
        write_jsonl(&log, &done)?;
    }
    // The first of the best, as an argmax.
    let best = done.iter().reduce(|b, c| if c.valid_acc > b.valid_acc { c } else { b }).context("no candidate ran")?;
    let genotype = S::Genotype::parse(&genotype_path(&out, best.index).to_string_lossy())?;
    let result = BaselineResult {
        space: S::NAME.to_string(),
        arch: best.arch.clone(),
        seed: cfg.seed,
        candidates: done.len(),
        valid_acc: best.valid_acc,
        train_seconds: done.iter().map(|c| c.seconds).sum(),
        budget_minutes: cfg.budget_minutes,
        parameter_free_share: genotype.parameter_free_share(),
        benchmark: S::benchmark()
            .and_then(|b| Some((b.about().key.to_string(), b.record(&genotype)?)))
            .into_iter()
            .collect(),
    };
    write_json(&out.join("result.json"), &result)?;
    Ok(result)
}

/// The wall-clock seconds the finished search in `run` took, as the budget of a random search over the images `data`
/// describes, subset and split with `seed`: equal cost, when both run on one machine. Refused when `run` is not a
/// finished search of this space, or searched other images.
pub fn budget_of<S: Space>(run: &Path, data: &DataConfig, seed: u64) -> Result<f64> {
    let path = run.join("result.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (is it a finished search?)", path.display()))?;
    let result: SearchResult =
        serde_json::from_str(&text).with_context(|| format!("{} is not the result of a search", path.display()))?;
    ensure!(
        result.space == S::NAME,
        "{} searched the {} space, this baseline draws from {}",
        run.display(),
        result.space,
        S::NAME
    );
    let search = SearchConfig::<S>::load(&run.join(CONFIG_FILE))?;
    let searched = &search.data;
    let canonical =
        |p: &Option<PathBuf>| format!("{:?}", p.as_ref().map(|p| p.canonicalize().unwrap_or_else(|_| p.clone())));
    // The seed draws the subset and the split, so it only matters where there is one of them.
    let drawn = data.per_class > 0 || (data.heldout_path.is_none() && data.split < 1.0);
    let seeds = if drawn { (search.seed.to_string(), seed.to_string()) } else { Default::default() };
    let fields = [
        ("data.path", canonical(&searched.path), canonical(&data.path)),
        ("data.heldout_path", canonical(&searched.heldout_path), canonical(&data.heldout_path)),
        ("data.per_class", searched.per_class.to_string(), data.per_class.to_string()),
        ("data.split", searched.split.to_string(), data.split.to_string()),
        ("seed", seeds.0, seeds.1),
    ];
    if let Some((field, there, here)) = fields.iter().find(|(_, there, here)| there != here) {
        crate::error::bail!(
            "{} searched other images than this baseline would ({field}: {there} there, {here} here)",
            run.display()
        );
    }
    Ok(result.train_seconds)
}

/// The configuration and folder of a new run (claimed: whether the claim created the folder) or of one being
/// resumed (read back).
fn open<S: Space>(start: Start<BaselineConfig<S>>) -> Result<(BaselineConfig<S>, PathBuf, Option<bool>)> {
    match start {
        Start::New { config, out } => {
            config.validate()?;
            let created = report::claim_run_folder(&out, &toml::to_string_pretty(&config)?)?;
            Ok((config, out, Some(created)))
        }
        Start::Resume { dir, machine } => {
            let path = dir.join(CONFIG_FILE);
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let config: BaselineConfig<S> =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            config.validate().with_context(|| format!("{}", path.display()))?;
            Ok((crate::config::layered(config, None, &machine)?, dir, None))
        }
    }
}

/// Undoes the claim of a new random search whose first candidate failed to start (no images, no GPU: the retrain
/// released its own folder), so that nothing blocks the rerun. A candidate that began training stays, for --resume.
fn release_unstarted(out: &Path, created: bool) {
    if candidate_dir(out, 0).exists() {
        return;
    }
    let _ = std::fs::remove_file(genotype_path(out, 0));
    let _ = std::fs::remove_dir(out.join("candidates"));
    report::release_run_folder(out, created);
}

fn read_candidates(path: &Path) -> Result<Vec<Candidate>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| serde_json::from_str(line).with_context(|| format!("{} line {}", path.display(), i + 1)))
        .collect()
}

/// The retrain folder of candidate `index`.
fn candidate_dir(out: &Path, index: usize) -> PathBuf {
    out.join("candidates").join(format!("{index:04}"))
}

fn genotype_path(out: &Path, index: usize) -> PathBuf {
    out.join("candidates").join(format!("{index:04}.genotype.json"))
}

/// Draws candidate `index` (the same one however often the run is resumed) and trains it in its own folder.
fn train_candidate<S: Space>(
    cfg: &BaselineConfig<S>,
    out: &Path,
    index: usize,
    progress: ProgressMode,
) -> Result<Candidate> {
    let started = Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(index as u64));
    let genotype = S::random_genotype(&cfg.supernet, &cfg.derive, &mut rng);
    let spec = genotype_path(out, index);
    std::fs::create_dir_all(spec.parent().expect("inside the run folder"))?;
    write_json(&spec, &genotype)?;
    let dir = candidate_dir(out, index);
    let start = if dir.join(CONFIG_FILE).exists() {
        Start::Resume { dir, machine: crate::config::machine_of(&cfg.candidate)? }
    } else {
        let config = RetrainConfig { genotype: spec.to_string_lossy().into_owned(), ..cfg.candidate.clone() };
        Start::New { config, out: dir }
    };
    let result = retrain::run::<S>(RetrainRun { start, progress, stop_after_steps: None, dist: Dist::single() })?;
    let valid = result.final_valid.context("a candidate trained without validation images")?;
    Ok(Candidate {
        index,
        arch: genotype.text().trim_end().to_string(),
        valid_acc: valid.top1,
        seconds: started.elapsed().as_secs_f64().max(result.train_seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{darts::Darts, nb201::Nb201};

    /// Candidates train briefly whatever the preset's retrain recipe, and a recipe already brief is kept.
    #[test]
    fn candidates_train_at_most_the_brief_schedule() {
        for preset in [Preset::Paper, Preset::Embedded, Preset::Smoke] {
            let full = Nb201::retrain_preset(preset).train;
            let brief = BaselineConfig::<Nb201>::preset(preset, 10.0).candidate.train;
            assert_eq!(brief.epochs, full.epochs.min(BRIEF_EPOCHS), "{preset:?}");
            assert_eq!(brief.lr, full.lr, "{preset:?}: only the length changes");
        }
        assert_eq!(Nb201::retrain_preset(Preset::Paper).train.epochs, 200);
        assert_eq!(BaselineConfig::<Darts>::preset(Preset::Paper, 10.0).candidate.train.epochs, BRIEF_EPOCHS);
    }
}
