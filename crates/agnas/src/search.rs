//! The AGNAS search loop, the same for every space:
//! train weights and attention on one half, accumulate attention on the other, derive the architecture.
use crate::config::{Recipe, SearchConfig};
use crate::data::augment::Augment;
use crate::data::loader::Loader;
use crate::dist::Dist;
use crate::error::{ensure, Context, Result};
use crate::report::{self, progress::ProgressMode, write_json};
use crate::space::confidence::{self, Bootstrap, Confidence, PerBatch};
use crate::space::{Decider, Derived, Importances, Space, Supernet, SupernetOutput};
use crate::train::{
    cross_entropy, evaluate, EpochEnd, Finished, History, Job, Launch, Launched, Run, RunConfig, Sgd, StepContext,
    TrainConfig, Trainer,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub heldout_loss: Option<f64>,
    pub heldout_acc: Option<f64>,
    pub seconds: f64,
}

/// The title of the heatmap a search writes as `importance.svg`.
const HELDOUT_HEATMAP_TITLE: &str = "Held-out attention per candidate (AGNAS importances)";

/// The picture of the decisions' confidence over the held-out passes.
const DECISIONS_PICTURE: &str = "decisions.svg";

/// The per-batch importances of the latest held-out pass, for re-deriving with confidence.
pub const HELDOUT_BATCHES_FILE: &str = "heldout_batches.safetensors";

/// The importances of one epoch: accumulated over the training steps, and over the held-out half if it ran; each
/// pass as the search holds it ([`Importances`]) or as `importances.json` writes it ([`DescribedPass`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Epoch<P> {
    pub epoch: usize,
    pub train: P,
    pub heldout: Option<P>,
    /// The decisions of the held-out importances and how sure each is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// Mean rank correlation of the decisions' scores with the previous held-out pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_correlation: Option<f64>,
}

/// An epoch's importances as the search holds them.
pub type EpochImportance = Epoch<Importances>;

/// One epoch of `importances.json`: the passes with the labels of every axis.
pub type ImportanceRecord = Epoch<DescribedPass>;

/// Why a search ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// It trained every epoch of its budget.
    #[default]
    Epochs,
    /// Every decision stayed the same and sure enough in two consecutive held-out passes (`until_decided`).
    Decided,
}

/// What a finished search returns (and writes to `result.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    pub space: String,
    pub arch: String,
    pub seed: u64,
    pub heldout_acc: f64,
    pub train_seconds: f64,
    /// Epochs trained, and why no more.
    #[serde(default)]
    pub epochs: usize,
    #[serde(default)]
    pub stopped: Stopped,
    /// Lines for the terminal: what the architecture is worth, where the space knows.
    #[serde(skip)]
    pub report: Vec<String>,
    #[serde(flatten)]
    pub extra: serde_json::Value,
}

/// How a search is started.
pub type SearchRun<S> = Launched<SearchConfig<S>>;

/// The search's part of the training loop: weights and attention trained together, importances summed on the
/// device, the held-out pass at the end of the epochs that have one.
struct SearchJob<'a, S: Space> {
    cfg: &'a SearchConfig<S>,
    supernet: &'a dyn Supernet,
    heldout: &'a Loader,
    /// The held-out images of the passes before the last, where `importance.subset` takes fewer than all.
    subset: Option<&'a Loader>,
    decider: Decider,
    out: &'a Path,
    device: Device,
    kind: Kind,
    dist: &'a Dist,
    progress: ProgressMode,
    /// Σ of the importances over this epoch's training steps.
    importance: Option<Tensor>,
}

/// The importances of every epoch, kept in the checkpoints' history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SearchHistory {
    importances: Vec<EpochImportance>,
    /// Set when `until_decided` ended the search.
    #[serde(default)]
    stopped: Stopped,
}

/// One held-out pass, assessed.
struct Pass {
    heldout: HeldOut,
    importances: Importances,
    confidence: Confidence,
    rank_correlation: Option<f64>,
}

impl<S: Space> Job for SearchJob<'_, S> {
    type Epoch = EpochMetrics;
    type Extra = SearchHistory;

    fn step(&mut self, x: &Tensor, y: &Tensor, ctx: StepContext, opt: &mut Sgd) -> Result<(Tensor, Tensor)> {
        let (output, loss) = train_step(self.supernet, opt, x, y, ctx.lr, &self.cfg.train)?;
        add_importance(&mut self.importance, &output.importance);
        Ok((output.logits, loss))
    }

    fn accumulators(&self) -> Vec<(&str, &Tensor)> {
        self.importance.iter().map(|t| ("importance", t)).collect()
    }

    fn restore(&mut self, saved: Vec<(String, Tensor)>) -> Result<()> {
        for (name, t) in saved {
            ensure!(name == "importance", "unknown accumulator `{name}` in checkpoint");
            self.importance = Some(t);
        }
        Ok(())
    }

    fn end_epoch(&mut self, end: &EpochEnd, extra: &mut SearchHistory) -> Result<EpochMetrics> {
        let epoch = end.epoch;
        let train_importance = self.importance.take().context("an epoch ran no step: is the training half empty?")?;
        let mut pass = None;
        if self.cfg.importance.pass_after(epoch, self.cfg.train.epochs) {
            let loader = if end.last { self.heldout } else { self.subset.unwrap_or(self.heldout) };
            let mut p = self.pass(loader, epoch, extra)?;
            if !end.last && self.decided(&p.confidence, extra, epoch) {
                tracing::info!("every decision has held for two held-out passes: the search has decided");
                extra.stopped = Stopped::Decided;
                if self.subset.is_some() {
                    // The architecture is derived from all held-out images, as at the end of a full search.
                    p = self.pass(self.heldout, epoch, extra)?;
                }
            }
            pass = Some(p);
        }
        let (train_loss, train_acc) = (end.train.loss, end.train.top1);
        tracing::info!(
            "epoch {}/{}: train loss {train_loss:.4} acc {:.2}%{}",
            epoch + 1,
            self.cfg.train.epochs,
            100.0 * train_acc,
            pass.as_ref().map_or(String::new(), |p| format!(
                ", held-out loss {:.4} acc {:.2}%{}",
                p.heldout.loss,
                100.0 * p.heldout.acc,
                p.confidence.architecture.map_or(String::new(), |a| format!(", architecture confidence {a:.2}"))
            ))
        );
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            lr: end.lr,
            train_loss,
            train_acc,
            heldout_loss: pass.as_ref().map(|p| p.heldout.loss),
            heldout_acc: pass.as_ref().map(|p| p.heldout.acc),
            seconds: end.started.elapsed().as_secs_f64(),
        };
        extra.importances.push(EpochImportance {
            epoch: epoch + 1,
            train: S::importances(&self.cfg.supernet, &train_importance)?,
            heldout: pass.as_ref().map(|p| p.importances.clone()),
            rank_correlation: pass.as_ref().and_then(|p| p.rank_correlation),
            confidence: pass.map(|p| p.confidence),
        });
        if self.dist.is_root() {
            write_json(&self.out.join(IMPORTANCES_FILE), &describe::<S>(&self.cfg.supernet, &extra.importances))?;
            if let Some(svg) = decision_curves(&extra.importances)? {
                crate::report::atomic_write(&self.out.join(DECISIONS_PICTURE), svg.as_bytes())?;
            }
        }
        Ok(metrics)
    }

    fn done(&self, extra: &SearchHistory) -> bool {
        extra.stopped == Stopped::Decided
    }
}

impl<S: Space> SearchJob<'_, S> {
    /// A held-out pass over `loader`: its importances, their per-batch rows (written to the run folder), the
    /// decisions' confidence and their rank correlation with the previous pass.
    fn pass(&self, loader: &Loader, epoch: usize, extra: &SearchHistory) -> Result<Pass> {
        let heldout = heldout_pass(self.supernet, loader, epoch, (self.device, self.kind), self.dist, self.progress)?;
        let importances = heldout_importances::<S>(&self.cfg.supernet, &heldout)?;
        if self.dist.is_root() {
            crate::report::write_tensors([("importance", &heldout.batches)], &self.out.join(HELDOUT_BATCHES_FILE))?;
        }
        let batches = per_batch(&importances, &heldout.batches)?;
        let confidence = confidence::assess(&batches, &self.decider, bootstrap(self.cfg, epoch))?;
        let previous = extra.importances.iter().rev().find_map(|e| e.heldout.as_ref());
        let rank_correlation = match previous {
            Some(prev) => confidence::rank_correlation(&(self.decider)(prev)?, &(self.decider)(&importances)?),
            None => None,
        };
        Ok(Pass { heldout, importances, confidence, rank_correlation })
    }

    /// Whether `until_decided` stops the search after this pass: past `min_epochs`, every decision the same as in
    /// the previous pass and at least as sure as asked in both.
    fn decided(&self, now: &Confidence, extra: &SearchHistory, epoch: usize) -> bool {
        let settings = &self.cfg.importance;
        if settings.until_decided == 0.0 || epoch + 1 < settings.min_epochs {
            return false;
        }
        let previous = extra.importances.iter().rev().find_map(|e| e.confidence.as_ref());
        previous.is_some_and(|prev| {
            prev.choices() == now.choices()
                && prev.all_at_least(settings.until_decided)
                && now.all_at_least(settings.until_decided)
        })
    }
}

/// The held-out passes that have a bootstrap: (epoch, confidence, rank correlation with the pass before).
fn assessed_passes(importances: &[EpochImportance]) -> Vec<(usize, &Confidence, Option<f64>)> {
    importances
        .iter()
        .filter_map(|e| {
            e.confidence.as_ref().filter(|c| c.architecture.is_some()).map(|c| (e.epoch, c, e.rank_correlation))
        })
        .collect()
}

/// Confidence over the held-out passes (each decision in grey, the architecture's and the weakest decision's
/// emphasised) and the rank correlation between consecutive passes; none before there are two passes.
fn decision_curves(importances: &[EpochImportance]) -> Result<Option<String>> {
    use crate::report::curves::{line_chart_svg, Series, ACCENT, COOL, GREY, INK};
    let passes = assessed_passes(importances);
    if passes.len() < 2 {
        return Ok(None);
    }
    let x = |e: usize| e as f64;
    let points = passes[0].1.decisions.len();
    let mut series: Vec<Series> = (0..points)
        .map(|i| Series {
            label: (i == 0).then(|| "each decision".to_string()),
            points: passes.iter().filter_map(|(e, c, _)| Some((x(*e), c.decisions.get(i)?.confidence?))).collect(),
            colour: GREY,
            width: 1,
        })
        .collect();
    series.push(Series {
        label: Some("weakest decision".into()),
        points: passes.iter().filter_map(|(e, c, _)| Some((x(*e), c.weakest()?))).collect(),
        colour: ACCENT,
        width: 2,
    });
    series.push(Series {
        label: Some("architecture".into()),
        points: passes.iter().filter_map(|(e, c, _)| Some((x(*e), c.architecture?))).collect(),
        colour: INK,
        width: 3,
    });
    let rho: Vec<(f64, f64)> = passes.iter().filter_map(|(e, _, r)| Some((x(*e), (*r)?))).collect();
    let low = rho.iter().map(|p| p.1).fold(0.0, f64::min);
    series.push(Series {
        label: Some("rank correlation with the pass before".into()),
        points: rho,
        colour: COOL,
        width: 2,
    });
    let epochs = x(passes[0].0)..x(passes[passes.len() - 1].0);
    let svg = line_chart_svg(
        "Decision confidence over the held-out passes",
        ("epoch", epochs),
        ("bootstrap confidence / Spearman ρ", low..1.02),
        &series,
    )?;
    Ok(Some(svg))
}

/// The bootstrap of the pass after epoch `epoch` (0-based), seeded by the run and the epoch so that a resumed run
/// draws the same resamples.
fn bootstrap<S: Space>(cfg: &SearchConfig<S>, epoch: usize) -> Bootstrap {
    Bootstrap {
        resamples: cfg.importance.resamples,
        seed: cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64),
        min_confidence: cfg.importance.min_confidence,
    }
}

/// The rows of a (batches, …) tensor of per-batch importances under the axes and mask of their sum.
fn per_batch(total: &Importances, batches: &Tensor) -> Result<PerBatch> {
    let n = batches.size().first().copied().unwrap_or(0) as usize;
    let values =
        Vec::<f64>::try_from(batches.to_kind(Kind::Double).to_device(Device::Cpu).contiguous().flatten(0, -1))?;
    // A file of no batches (or of empty ones) has no rows, which `PerBatch::new` judges.
    let width = values.len().checked_div(n).unwrap_or(0);
    let rows = if width == 0 { Vec::new() } else { values.chunks(width).map(<[f64]>::to_vec).collect() };
    PerBatch::new(total.clone(), rows)
}

/// The held-out importances, refused when the pass produced non-finite values: nothing may be derived from them.
fn heldout_importances<S: Space>(cfg: &S::Supernet, heldout: &HeldOut) -> Result<Importances> {
    let importances = S::importances(cfg, &heldout.importance)?;
    let problem = match importances.ensure_finite() {
        Err(e) => Some(e.to_string()),
        Ok(()) if !heldout.loss.is_finite() => Some("the attention is finite, the loss is not".to_string()),
        Ok(()) => None,
    };
    match problem {
        Some(detail) => Err(crate::Error::HeldOutDiverged { loss: heldout.loss, detail }),
        None => Ok(importances),
    }
}

/// The importances file of a search's run folder.
pub const IMPORTANCES_FILE: &str = "importances.json";

/// A pass's importances as the space describes them (`axes`, `values` and the labels of each axis): what its
/// importance picture is drawn from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct DescribedPass(pub serde_json::Value);

impl DescribedPass {
    /// The importances under their axes.
    pub fn importances(&self) -> Result<Importances> {
        let axes: Vec<&str> = self.0["axes"].as_array().into_iter().flatten().filter_map(|a| a.as_str()).collect();
        Importances::from_nested(&axes, &self.0["values"])
    }
}

impl ImportanceRecord {
    /// The held-out pass, else the training pass.
    pub fn latest_pass(&self) -> &DescribedPass {
        self.heldout.as_ref().unwrap_or(&self.train)
    }
}

/// `importances.json` of a search's importances per epoch.
pub fn describe<S: Space>(cfg: &S::Supernet, importances: &[EpochImportance]) -> Vec<ImportanceRecord> {
    importances
        .iter()
        .map(|e| ImportanceRecord {
            epoch: e.epoch,
            train: DescribedPass(S::describe(cfg, &e.train)),
            heldout: e.heldout.as_ref().map(|h| DescribedPass(S::describe(cfg, h))),
            confidence: e.confidence.clone(),
            rank_correlation: e.rank_correlation,
        })
        .collect()
}

/// The records of an `importances.json`.
pub fn read_importance_records(path: &Path) -> Result<Vec<ImportanceRecord>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The importances of `importances.json` back, typed, for re-deriving a genotype.
pub fn read_importances(path: &Path) -> Result<Vec<EpochImportance>> {
    read_importance_records(path)?
        .into_iter()
        .map(|r| {
            Ok(EpochImportance {
                epoch: r.epoch,
                train: r.train.importances()?,
                heldout: r.heldout.as_ref().map(DescribedPass::importances).transpose()?,
                confidence: r.confidence,
                rank_correlation: r.rank_correlation,
            })
        })
        .collect::<Result<_>>()
        .with_context(|| format!("{}", path.display()))
}

/// The architecture derived again from a run folder: the last held-out importances of its `importances.json` under
/// the `[supernet]` and `[derive]` of its `config.toml`, with `flags` laid over its `[derive]` (a budget, …); with
/// the confidence of the new derivation where the run kept the pass's per-batch importances.
pub fn rederive<S: Space>(dir: &Path, flags: &crate::config::Overrides) -> Result<Derived> {
    let saved = SearchConfig::<S>::load(&dir.join(crate::report::CONFIG_FILE))?;
    let cfg = crate::config::layered(saved, None, flags)?;
    cfg.validate()?;
    let path = dir.join(IMPORTANCES_FILE);
    let epochs = read_importances(&path)?;
    let last = epochs
        .iter()
        .rev()
        .find_map(|e| e.heldout.as_ref())
        .with_context(|| format!("{}: no epoch has held-out importances yet", path.display()))?;
    let batches_path = dir.join(HELDOUT_BATCHES_FILE);
    let confidence = if batches_path.exists() {
        let tensors =
            Tensor::read_safetensors(&batches_path).with_context(|| format!("reading {}", batches_path.display()))?;
        let (_, batches) = tensors
            .into_iter()
            .find(|(name, _)| name == "importance")
            .with_context(|| format!("{}: no `importance` tensor", batches_path.display()))?;
        let batches = per_batch(last, &batches).with_context(|| format!("{}", batches_path.display()))?;
        let epoch = epochs.iter().rev().find(|e| e.heldout.is_some()).map_or(0, |e| e.epoch - 1);
        Some(confidence::assess(&batches, &S::decider(&cfg.supernet, &cfg.derive)?, bootstrap(&cfg, epoch))?)
    } else {
        None
    };
    conclude(&cfg, last, confidence.as_ref())
}

/// [`Space::derive`] with what a search adds: the importance picture, and the confidence in `result.json`,
/// `summary.md`, the picture and the terminal.
fn conclude<S: Space>(
    cfg: &SearchConfig<S>,
    heldout: &Importances,
    confidence: Option<&Confidence>,
) -> Result<Derived> {
    let mut derived = S::derive(&cfg.supernet, &cfg.derive, heldout)?.erase()?;
    let warnings = confidence.map(|c| c.warnings(cfg.importance.max_parameter_free)).unwrap_or_default();
    let mut notes = confidence.map(Confidence::notes).unwrap_or_default();
    notes.extend(warnings.iter().map(|w| format!("warning: {w}")));
    let picture = S::importance_svg(&S::describe(&cfg.supernet, heldout), HELDOUT_HEATMAP_TITLE, &notes)?;
    derived.files.push(("importance.svg".to_string(), picture.into_bytes()));
    if let Some(c) = confidence {
        derived.result["confidence"] = serde_json::to_value(c)?;
        derived.result["warnings"] = serde_json::to_value(&warnings)?;
        derived.details_md.push('\n');
        derived.details_md.push_str(&c.markdown());
        for w in &warnings {
            derived.details_md.push_str(&format!("\n**Warning:** {w}\n"));
        }
        if let Some(a) = c.architecture {
            derived.report.push(format!(
                "confidence: architecture {a:.2}, weakest decision {:.2}; {:.0} % of the chosen operations have no \
                 parameters",
                c.weakest().unwrap_or(a),
                100.0 * c.parameter_free_share
            ));
        }
        derived.report.extend(warnings.iter().map(|w| format!("warning: {w}")));
    }
    Ok(derived)
}

fn add_importance(acc: &mut Option<Tensor>, importance: &Tensor) {
    let imp = importance.to_kind(Kind::Double);
    match acc {
        Some(acc) => {
            let _ = acc.g_add_(&imp);
        }
        None => *acc = Some(imp),
    }
}

/// A search's configuration: preset ← file ← flags, on the recipe's images.
pub fn config<S: Space>(recipe: &Recipe) -> Result<SearchConfig<S>> {
    let mut c = recipe.layered(S::search_preset)?;
    if let Some(data) = recipe.data {
        c.data.path = Some(data.to_path_buf());
    }
    // Stopping when decided watches held-out passes: asked for without saying how often, it gets one per epoch.
    let asked = recipe.given.get("importance.until_decided").is_some();
    if asked && c.importance.every == 0 && recipe.given.get("importance.every").is_none() {
        c.importance.every = 1;
    }
    Ok(c)
}

/// The search a command asks for: a new one of the recipe's configuration, or the one it resumes.
pub fn launch<S: Space>(recipe: &Recipe, launch: Launch) -> Result<Finished<SearchResult>> {
    let search = launch.with(|| {
        let config = config::<S>(recipe)?;
        let name = format!("{}-seed{}", S::NAME, config.seed);
        Ok((config, name))
    })?;
    let out = search.start.out().to_path_buf();
    Ok(Finished { result: run::<S>(search)?, out })
}

/// The whole search; returns the result also written to `<out>/result.json`.
pub fn run<S: Space>(search: SearchRun<S>) -> Result<SearchResult> {
    let run = Run::open(search.start, search.dist)?;
    let cfg = &run.config;
    let progress = if run.dist.is_root() { search.progress } else { ProgressMode::Hidden };
    tracing::info!(
        "{}: {} training / {} held-out images, {} classes, device {:?}",
        S::NAME,
        run.train_idx.len(),
        run.other_idx.len(),
        run.num_classes,
        run.device
    );
    for warning in S::input_warnings(&cfg.supernet, run.image_size) {
        tracing::warn!("{warning}");
    }
    let (vs, supernet) = run.model(|p| Ok(S::build_supernet(&cfg.supernet, p, run.in_channels, run.num_classes)))?;
    let opt = Sgd::from_config(&vs, &cfg.train);
    let schedule = crate::train::schedule(&cfg.train);
    let mut trainer =
        Trainer::new(&run, vs, opt, schedule).progress(progress).stop_after_steps(search.stop_after_steps);
    let train_loader = run.loader(run.train_idx.clone(), cfg.train.batch_size, cfg.train.augment);
    let heldout_augment = if cfg.importance.augment { cfg.train.augment } else { Augment::none() };
    let heldout_loader = run.other_loader(cfg.importance.batch_size, heldout_augment);
    let subset = cfg.importance.subset;
    let subset_loader = (subset > 0 && subset < run.other_idx.len()).then(|| {
        let idx = run.other_idx[..subset].to_vec();
        run.loader_over(run.other_set.clone(), idx, cfg.importance.batch_size, heldout_augment)
    });
    let mut job = SearchJob {
        cfg,
        supernet: supernet.as_ref(),
        heldout: &heldout_loader,
        subset: subset_loader.as_ref(),
        decider: S::decider(&cfg.supernet, &cfg.derive)?,
        out: &run.out,
        device: run.device,
        kind: run.kind,
        dist: &run.dist,
        progress,
        importance: None,
    };
    let history = trainer.fit(&mut job, &train_loader)?;
    if let Some(result) = run.finished::<SearchResult>()? {
        // A finished run resumed: its files stand; what the terminal shows is derived again.
        let (heldout, confidence) = last_heldout(&history)?;
        let report = conclude(cfg, heldout, confidence)?.report;
        return Ok(SearchResult { report, ..result });
    }
    finish(&run, &history)
}

/// The held-out importances of the last epoch, from which the architecture is derived, and their confidence.
fn last_heldout(history: &History<EpochMetrics, SearchHistory>) -> Result<(&Importances, Option<&Confidence>)> {
    let last = history.extra.importances.last().context("the search ran no epoch")?;
    let heldout = last.heldout.as_ref().context("the last epoch has no held-out importances")?;
    Ok((heldout, last.confidence.as_ref()))
}

/// Derives the architecture from the last epoch's held-out importances and writes the run's result files.
fn finish<S: Space>(
    run: &Run<SearchConfig<S>>,
    history: &History<EpochMetrics, SearchHistory>,
) -> Result<SearchResult> {
    let out = &run.out;
    let cfg = &run.config;
    let (heldout, confidence) = last_heldout(history)?;
    let derived = conclude(cfg, heldout, confidence)?;
    // Every rank derived from the same summed importances; a rank that found another architecture is a bug or a
    // broken engine, and ends the run before anything is written.
    run.dist.agree("architecture", serde_json::to_string(&derived.genotype)?.as_bytes())?;
    let heldout_acc = history.metrics.last().and_then(|m| m.heldout_acc).unwrap_or(f64::NAN);
    let result = SearchResult {
        space: S::NAME.to_string(),
        arch: derived.name.clone(),
        seed: cfg.seed,
        heldout_acc,
        train_seconds: history.train_seconds,
        epochs: history.metrics.len(),
        stopped: history.extra.stopped,
        report: derived.report.clone(),
        extra: derived.result,
    };
    if !run.dist.is_root() {
        return Ok(result);
    }
    write_json(&out.join("genotype.json"), &derived.genotype)?;
    for (name, bytes) in &derived.files {
        report::atomic_write(&out.join(name), bytes)?;
    }
    write_json(&out.join("result.json"), &result)?;
    let summary = summary(cfg, history, &result, &derived.details_md);
    report::atomic_write(&out.join("summary.md"), summary.as_bytes())?;
    Ok(result)
}

/// One SGD step on weights and attention together; returns the forward's output and the loss.
pub fn train_step(
    supernet: &dyn Supernet,
    opt: &mut Sgd,
    x: &Tensor,
    y: &Tensor,
    lr: f64,
    train: &TrainConfig,
) -> Result<(SupernetOutput, Tensor)> {
    let output = supernet.forward_t(x, true);
    let loss = cross_entropy(&output.logits, y, train.label_smoothing);
    opt.zero_grad();
    loss.backward();
    opt.clip_and_step(lr, train.grad_clip, train.grad_clip_by)?;
    Ok((output, loss))
}

struct HeldOut {
    loss: f64,
    acc: f64,
    importance: Tensor,
    /// Each batch's importances, stacked: (batches, …).
    batches: Tensor,
}

/// Forward of the whole held-out half in eval mode, accumulating importances on the device.
/// With several ranks, each runs its part of every batch and the sums (per batch too) are summed over the ranks.
fn heldout_pass(
    supernet: &dyn Supernet,
    loader: &Loader,
    epoch: usize,
    on: (Device, Kind),
    dist: &Dist,
    mode: ProgressMode,
) -> Result<HeldOut> {
    let mut importance = None;
    let mut batches = Vec::new();
    let means = evaluate(loader, epoch, on, dist, mode, "held-out pass", |x| {
        let output = supernet.forward_t(x, false);
        add_importance(&mut importance, &output.importance);
        batches.push(output.importance.to_kind(Kind::Double));
        output.logits
    })?;
    let importance = importance.context("the held-out half is empty")?;
    let batches = Tensor::stack(&batches, 0);
    dist.all_reduce_sum(&[importance.shallow_clone(), batches.shallow_clone()])?;
    Ok(HeldOut { loss: means.loss, acc: means.top1, importance, batches })
}

fn summary<S: Space>(
    cfg: &SearchConfig<S>,
    state: &History<EpochMetrics, SearchHistory>,
    result: &SearchResult,
    details_md: &str,
) -> String {
    let mut s = format!("# AGNAS search: {}\n\nFound architecture: `{}`\n\n", result.space, result.arch);
    let stopped = match result.stopped {
        Stopped::Decided => format!(" (decided: stopped before the budget of {})", cfg.train.epochs),
        Stopped::Epochs => String::new(),
    };
    s.push_str(&format!(
        "Supernet held-out accuracy {:.2} %, {} epochs{stopped} in {:.0} s, seed {}.\n\n| epoch | lr | train loss | train acc % |\n|---|---|---|---|\n",
        100.0 * result.heldout_acc,
        result.epochs,
        state.train_seconds,
        cfg.seed
    ));
    for m in &state.metrics {
        s.push_str(&format!("| {} | {:.5} | {:.4} | {:.2} |\n", m.epoch, m.lr, m.train_loss, 100.0 * m.train_acc));
    }
    s.push('\n');
    s.push_str(&passes_table(&state.extra.importances));
    s.push_str(details_md);
    s
}

/// The held-out passes over time: confidence, rank correlation and how many decisions changed (`decisions.svg`
/// draws it); empty with fewer than two passes.
fn passes_table(importances: &[EpochImportance]) -> String {
    let passes = assessed_passes(importances);
    if passes.len() < 2 {
        return String::new();
    }
    let mut s = String::from(
        "Held-out passes (`decisions.svg`):\n\n| epoch | architecture confidence | weakest decision | rank correlation | \
         decisions changed |\n|---|---:|---:|---:|---:|\n",
    );
    let mut previous: Option<Vec<&str>> = None;
    for (epoch, c, rho) in passes {
        let choices = c.choices();
        let changed = previous
            .as_ref()
            .map_or("–".to_string(), |p| p.iter().zip(&choices).filter(|(a, b)| a != b).count().to_string());
        let num = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
        s.push_str(&format!(
            "| {epoch} | {} | {} | {} | {changed} |\n",
            num(c.architecture),
            num(c.weakest()),
            num(rho)
        ));
        previous = Some(choices);
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A per-batch file of no batches, or of empty ones, is an error, not a panic.
    #[test]
    fn per_batch_rows_of_nothing_are_an_error() {
        let total = Importances { axes: vec!["op".into()], shape: vec![2], values: vec![1.0, 2.0], mask: None };
        let rows = per_batch(&total, &Tensor::from_slice(&[0.5f64, 1.0, 0.5, 1.0]).view([2, 2])).unwrap();
        assert_eq!(rows.rows, [vec![0.5, 1.0], vec![0.5, 1.0]]);
        for empty in
            [Tensor::zeros([0, 2], (Kind::Double, Device::Cpu)), Tensor::zeros([3, 0], (Kind::Double, Device::Cpu))]
        {
            let err = per_batch(&total, &empty).expect_err("no rows").to_string();
            assert!(err.contains("no held-out batch"), "{err}");
        }
    }
}
