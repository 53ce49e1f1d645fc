//! The AGNAS search loop, the same for every space:
//! train weights and attention on one half, accumulate attention on the other, derive the architecture.
use crate::config::SearchConfig;
use crate::data;
use crate::data::loader::{Loader, LoaderConfig};
use crate::report::{self, progress::ProgressMode, write_json, write_jsonl, Progress};
use crate::space::{darts::DartsSpace, nb201::Nb201Space, SearchSpace, SpaceName, Supernet, SupernetOutput};
use crate::train::checkpoint::Checkpoints;
use crate::train::{CosineSchedule, Sgd, StepSchedule, Totals};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

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

/// The importances of one epoch: accumulated over the training steps, and over the held-out half if it ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochImportance {
    pub epoch: usize,
    pub train: serde_json::Value,
    pub heldout: Option<serde_json::Value>,
}

/// The loop's position and history: what a checkpoint needs besides tensors.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct LoopState {
    epoch: usize,
    step: usize,
    global_step: u64,
    train_seconds: f64,
    metrics: Vec<EpochMetrics>,
    importances: Vec<EpochImportance>,
}

/// What a finished search returns (and writes to `result.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    pub space: String,
    pub arch: String,
    pub seed: u64,
    pub heldout_acc: f64,
    pub train_seconds: f64,
    #[serde(flatten)]
    pub extra: serde_json::Value,
}

/// How a search is started.
pub struct SearchRun {
    pub config: SearchConfig,
    pub out: PathBuf,
    pub resume: bool,
    pub progress: ProgressMode,
    /// Stop (as if killed) after this many training steps; for crash tests.
    pub stop_after_steps: Option<u64>,
}

const CONFIG_FILE: &str = "config.toml";

/// Loss and accuracy sums over a pass and the importances, all on the device.
struct Accumulators {
    totals: Totals,
    importance: Option<Tensor>,
}

impl Accumulators {
    fn new(device: Device) -> Self {
        Accumulators { totals: Totals::new(device), importance: None }
    }

    fn add(&mut self, logits: &Tensor, loss: &Tensor, y: &Tensor, importance: &Tensor) {
        self.totals.add(logits, loss, y);
        let imp = importance.to_kind(Kind::Double);
        match &mut self.importance {
            Some(acc) => {
                let _ = acc.g_add_(&imp);
            }
            None => self.importance = Some(imp),
        }
    }

    fn named(&self) -> Vec<(&str, &Tensor)> {
        let mut v = self.totals.named();
        if let Some(i) = &self.importance {
            v.push(("importance", i));
        }
        v
    }

    fn restore(mut saved: Vec<(String, Tensor)>, device: Device) -> Result<Self> {
        let totals = Totals::restore(&mut saved, device)?;
        let mut importance = None;
        for (name, t) in saved {
            match name.as_str() {
                "importance" => importance = Some(t.to_device(device)),
                other => bail!("unknown accumulator `{other}` in checkpoint"),
            }
        }
        Ok(Accumulators { totals, importance })
    }

    /// (mean loss, accuracy) — one host read.
    fn means(&self) -> (f64, f64) {
        let m = self.totals.means();
        (m.loss, m.top1)
    }
}

pub fn space_of(cfg: &SearchConfig) -> Box<dyn SearchSpace> {
    match cfg.space {
        SpaceName::Nb201 => Box::new(Nb201Space { supernet: cfg.nb201.clone(), derive: cfg.derive }),
        SpaceName::Darts => Box::new(DartsSpace { supernet: cfg.darts.clone() }),
    }
}

/// Claims `out` for a new run: refuses a folder that holds one, then writes the resolved configuration.
pub fn start_run_folder(out: &Path, config_toml: &str) -> Result<()> {
    for existing in [CONFIG_FILE, "result.json", "checkpoints"] {
        ensure!(
            !out.join(existing).exists(),
            "{} already holds a run ({existing} exists): use --resume {} or another --out",
            out.display(),
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    report::atomic_write(&out.join(CONFIG_FILE), config_toml.as_bytes())
}

/// The whole search; returns the result also written to `<out>/result.json`.
pub fn run(run: SearchRun) -> Result<SearchResult> {
    let out = &run.out;
    let cfg = if run.resume {
        SearchConfig::load(&out.join(CONFIG_FILE)).context("resuming needs the run folder's config.toml")?
    } else {
        run.config.clone()
    };
    cfg.validate()?;
    let checkpoints = Checkpoints::new(out.join("checkpoints"));
    if !run.resume {
        start_run_folder(out, &cfg.to_toml()?)?;
    }
    if cfg.threads > 0 {
        tch::set_num_threads(cfg.threads as i32);
    }
    let device = cfg.device.resolve()?;
    let space = space_of(&cfg);
    let (dataset, train_idx, heldout_idx) =
        data::open_and_split(cfg.data.path.as_deref(), cfg.data.format, cfg.data.per_class, cfg.data.split, cfg.seed)?;
    let norm = data::Normalization::for_dataset(dataset.as_ref());
    tracing::info!(
        "{}: {} training / {} held-out images, {} classes, device {:?}",
        space.name(),
        train_idx.len(),
        heldout_idx.len(),
        dataset.num_classes(),
        device
    );

    tch::manual_seed(cfg.seed as i64);
    let mut vs = VarStore::new(device);
    let in_channels = dataset.image(0).context("reading the first image")?.channels as i64;
    let supernet = space.build(&vs.root(), in_channels, dataset.num_classes() as i64);
    cfg.memory_format.apply(&vs);
    let mut opt = Sgd::new(&vs, cfg.train.momentum, cfg.train.weight_decay, cfg.train.nesterov);
    let schedule = CosineSchedule {
        lr: cfg.train.lr,
        lr_min: cfg.train.lr_min,
        epochs: cfg.train.epochs,
        step_at_epoch_start: cfg.train.lr_step_at_epoch_start,
    };

    let (mut state, mut acc) = match checkpoints.latest()? {
        Some(dir) if run.resume => {
            let (saved, state): (_, LoopState) = Checkpoints::load(&dir, &mut vs, &mut opt)?;
            tracing::info!("resuming from {} (epoch {}, step {})", dir.display(), state.epoch, state.step);
            (state, Accumulators::restore(saved, device)?)
        }
        _ => (LoopState::default(), Accumulators::new(device)),
    };

    let loader_cfg = |batch_size: usize, augment: bool, shuffle: bool| LoaderConfig {
        batch_size,
        shuffle,
        drop_last: false,
        augment: if augment { cfg.train.augment } else { data::augment::Augment::none() },
        normalization: norm.clone(),
        workers: cfg.data.workers,
        prefetch: cfg.data.prefetch,
        seed: cfg.seed,
    };
    let train_loader = Loader::new(dataset.clone(), train_idx, loader_cfg(cfg.train.batch_size, true, true));
    let heldout_loader =
        Loader::new(dataset.clone(), heldout_idx, loader_cfg(cfg.importance.batch_size, cfg.importance.augment, false));
    let steps = train_loader.num_batches();
    let schedule_steps = StepSchedule {
        steps_per_epoch: steps,
        checkpoint_every: cfg.train.checkpoint_every,
        sync_every: cfg.train.sync_every,
        stop_after: run.stop_after_steps,
    };

    while state.epoch < cfg.train.epochs {
        let epoch = state.epoch;
        let lr = schedule.lr_at(epoch);
        let started = Instant::now();
        let mut progress =
            Progress::start(run.progress, format!("epoch {}/{}", epoch + 1, cfg.train.epochs), steps as u64);
        for batch in train_loader.epoch(epoch as u64, state.step) {
            let batch = batch?;
            let (x, y) = (batch.x.to_device(device), batch.y.to_device(device));
            let (output, loss) = train_step(supernet.as_ref(), &mut opt, &x, &y, lr, cfg.train.grad_clip);
            acc.add(&output.logits, &loss, &y, &output.importance);
            state.step += 1;
            state.global_step += 1;
            if schedule_steps.sync_due(state.step) {
                let (mean_loss, _) = acc.means();
                StepSchedule::ensure_finite(mean_loss, epoch, state.step, &checkpoints_dir(out))?;
                progress.set(state.step as u64, || format!("loss {mean_loss:.3} lr {lr:.4}"));
            }
            if schedule_steps.checkpoint_due(state.step) {
                // The checkpoint records the time trained so far, so that a resumed run reports its whole duration.
                let before = state.train_seconds;
                state.train_seconds += started.elapsed().as_secs_f64();
                checkpoints.save(state.global_step, &vs, &opt, &acc.named(), &state)?;
                state.train_seconds = before;
            }
            schedule_steps.check_stop(state.global_step)?;
        }
        progress.finish();
        let (train_loss, train_acc) = acc.means();
        ensure!(train_loss.is_finite(), "training diverged: the epoch {} loss is {train_loss}", epoch + 1);
        let train_importance = acc.importance.take().context("an epoch ran no step: is the training half empty?")?;

        let last = epoch + 1 == cfg.train.epochs;
        let heldout = if last || cfg.importance.every_epoch {
            Some(heldout_pass(supernet.as_ref(), &heldout_loader, epoch, device, run.progress)?)
        } else {
            None
        };
        state.train_seconds += started.elapsed().as_secs_f64();
        state.metrics.push(EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss,
            train_acc,
            heldout_loss: heldout.as_ref().map(|h| h.loss),
            heldout_acc: heldout.as_ref().map(|h| h.acc),
            seconds: started.elapsed().as_secs_f64(),
        });
        state.importances.push(EpochImportance {
            epoch: epoch + 1,
            train: space.describe_importance(&train_importance)?,
            heldout: heldout.as_ref().map(|h| space.describe_importance(&h.importance)).transpose()?,
        });
        tracing::info!(
            "epoch {}/{}: train loss {train_loss:.4} acc {:.2}%{}",
            epoch + 1,
            cfg.train.epochs,
            100.0 * train_acc,
            heldout.as_ref().map_or(String::new(), |h| format!(
                ", held-out loss {:.4} acc {:.2}%",
                h.loss,
                100.0 * h.acc
            ))
        );
        state.epoch += 1;
        state.step = 0;
        acc = Accumulators::new(device);
        write_jsonl(&out.join("metrics.jsonl"), &state.metrics)?;
        write_json(&out.join("importances.json"), &state.importances)?;
        if last {
            let heldout = heldout.expect("the last epoch runs the held-out pass");
            let derived = space.derive(&heldout.importance)?;
            let result = SearchResult {
                space: space.name().to_string(),
                arch: derived.name.clone(),
                seed: cfg.seed,
                heldout_acc: heldout.acc,
                train_seconds: state.train_seconds,
                extra: derived.result,
            };
            write_json(&out.join("genotype.json"), &derived.genotype)?;
            for (name, bytes) in &derived.files {
                report::atomic_write(&out.join(name), bytes)?;
            }
            write_json(&out.join("result.json"), &result)?;
            let summary = summary(&cfg, &state, &result, &derived.details_md);
            report::atomic_write(&out.join("summary.md"), summary.as_bytes())?;
            checkpoints.save(state.global_step, &vs, &opt, &acc.named(), &state)?;
            return Ok(result);
        }
        checkpoints.save(state.global_step, &vs, &opt, &acc.named(), &state)?;
    }
    // Resuming a finished run: its result is already on disk.
    let text =
        std::fs::read_to_string(out.join("result.json")).context("the run finished but result.json is missing")?;
    Ok(serde_json::from_str(&text)?)
}

/// One SGD step on weights and attention together; returns the forward's output and the loss.
pub fn train_step(
    supernet: &dyn Supernet,
    opt: &mut Sgd,
    x: &Tensor,
    y: &Tensor,
    lr: f64,
    grad_clip: f64,
) -> (SupernetOutput, Tensor) {
    let output = supernet.forward_t(x, true);
    let loss = output.logits.cross_entropy_for_logits(y);
    opt.zero_grad();
    loss.backward();
    opt.clip_and_step(lr, grad_clip);
    (output, loss)
}

fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

struct HeldOut {
    loss: f64,
    acc: f64,
    importance: Tensor,
}

/// Forward of the whole held-out half in eval mode, accumulating importances on the device.
fn heldout_pass(
    supernet: &dyn Supernet,
    loader: &Loader,
    epoch: usize,
    device: Device,
    mode: ProgressMode,
) -> Result<HeldOut> {
    let mut acc = Accumulators::new(device);
    let total = loader.num_batches() as u64;
    let mut progress = Progress::start(mode, "held-out pass", total);
    tch::no_grad(|| -> Result<()> {
        for (i, batch) in loader.epoch(epoch as u64, 0).enumerate() {
            let batch = batch?;
            let (x, y) = (batch.x.to_device(device), batch.y.to_device(device));
            let output = supernet.forward_t(&x, false);
            let loss = output.logits.cross_entropy_for_logits(&y);
            acc.add(&output.logits, &loss, &y, &output.importance);
            progress.set(i as u64 + 1, String::new);
        }
        Ok(())
    })?;
    progress.finish();
    let (loss, acc_mean) = acc.means();
    let importance = acc.importance.context("the held-out half is empty")?;
    Ok(HeldOut { loss, acc: acc_mean, importance })
}

fn summary(cfg: &SearchConfig, state: &LoopState, result: &SearchResult, details_md: &str) -> String {
    let mut s = format!("# AGNAS search: {}\n\nFound architecture: `{}`\n\n", result.space, result.arch);
    if let Some(rec) = result.extra.get("bench201").filter(|r| !r.is_null()) {
        s.push_str("| NAS-Bench-201 (200 epochs) | accuracy % |\n|---|---|\n");
        for key in ["c10_test", "c10v_valid", "c100_test", "in16_test"] {
            if let Some(v) = rec.get(key).and_then(|v| v.as_f64()) {
                s.push_str(&format!("| {key} | {v:.2} |\n"));
            }
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "Supernet held-out accuracy {:.2} %, {} epochs in {:.0} s, seed {}.\n\n| epoch | lr | train loss | train acc % |\n|---|---|---|---|\n",
        100.0 * result.heldout_acc,
        cfg.train.epochs,
        state.train_seconds,
        cfg.seed
    ));
    for m in &state.metrics {
        s.push_str(&format!("| {} | {:.5} | {:.4} | {:.2} |\n", m.epoch, m.lr, m.train_loss, 100.0 * m.train_acc));
    }
    s.push('\n');
    s.push_str(details_md);
    s
}
