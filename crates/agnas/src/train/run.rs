//! The training skeleton every run shares (search, retrain, and whatever loop comes next).
//!
//! [`Run::open`] claims or reopens the run folder, sets up the machine and opens and splits the data;
//! [`Run::model`] seeds and builds the network; a [`Trainer`] owns the optimiser, the LR schedule, the checkpoints,
//! the finite-loss check, progress, `metrics.jsonl` and the stop-after-steps hook. A [`Job`] supplies only its step
//! and its end-of-epoch work; what it does after the last epoch is its own code.
use super::checkpoint::Checkpoints;
use super::optim::{LrSchedule, Sgd};
use super::{DeviceChoice, Means, MemoryFormat, Precision, StepSchedule, Totals, TrainConfig};
use crate::config::Overrides;
use crate::data::augment::{Augment, Transform};
use crate::data::loader::{Batch, Loader, LoaderConfig, Shard};
use crate::data::{self, DataConfig, Dataset, Normalization};
use crate::dist::Dist;
use crate::error::{Context, Result};
use crate::report::tensorboard::{self, EventWriter};
use crate::report::{self, progress::ProgressMode, write_jsonl, Progress, CONFIG_FILE};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// How a run begins: a new run with its configuration, or the continuation of the run in a folder, which keeps the
/// configuration it was started with.
pub enum Start<C> {
    New {
        config: C,
        out: PathBuf,
    },
    /// The run in `dir`, on the machine `machine` describes (its [`Setting::resumable`] settings laid over the
    /// run's configuration for this process only).
    ///
    /// [`Setting::resumable`]: crate::config::Setting::resumable
    Resume {
        dir: PathBuf,
        machine: Overrides,
    },
}

impl<C> Start<C> {
    pub fn out(&self) -> &Path {
        match self {
            Start::New { out, .. } => out,
            Start::Resume { dir, .. } => dir,
        }
    }
}

/// How a command asks for a run before its configuration is made: a new one (in `out`, else a folder under `runs/`
/// named after it), or the continuation of the run in a folder.
#[derive(Debug, Clone)]
pub enum Begin {
    New { out: Option<PathBuf> },
    Resume { dir: PathBuf, machine: Overrides },
}

impl Begin {
    /// The run this asks for: the folder to resume, or a new run of the configuration and name `new` gives (only
    /// called for a new run: a resumed run keeps its own configuration).
    pub fn start<C>(self, new: impl FnOnce() -> Result<(C, String)>) -> Result<Start<C>> {
        Ok(match self {
            Begin::Resume { dir, machine } => Start::Resume { dir, machine },
            Begin::New { out } => {
                let (config, name) = new()?;
                Start::New { config, out: out.unwrap_or_else(|| default_out(&name)) }
            }
        })
    }
}

/// A new run's folder when none is named: `runs/<name>-<unix seconds>`.
pub fn default_out(name: &str) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    PathBuf::from(format!("runs/{name}-{secs}"))
}

/// How a command runs a task, whatever its space: which run, how its progress shows, and the ranks it runs with.
#[derive(Debug, Clone)]
pub struct Launch {
    pub begin: Begin,
    pub progress: crate::report::progress::ProgressMode,
    /// Stop (as if killed) after this many training steps; for crash tests.
    pub stop_after_steps: Option<u64>,
    pub dist: crate::dist::Dist,
}

impl Launch {
    /// The run this asks for, with the configuration and name `new` gives a new one.
    pub fn with<C>(self, new: impl FnOnce() -> Result<(C, String)>) -> Result<Launched<C>> {
        Ok(Launched {
            start: self.begin.start(new)?,
            progress: self.progress,
            stop_after_steps: self.stop_after_steps,
            dist: self.dist,
        })
    }
}

/// A run ready to open: how it starts, how its progress shows, and the ranks it runs with.
pub struct Launched<C> {
    pub start: Start<C>,
    pub progress: crate::report::progress::ProgressMode,
    /// Stop (as if killed) after this many training steps; for crash tests.
    pub stop_after_steps: Option<u64>,
    pub dist: crate::dist::Dist,
}

/// A finished task's result and the folder it wrote.
#[derive(Debug)]
pub struct Finished<R> {
    pub result: R,
    pub out: PathBuf,
}

/// The settings every run configuration has, whatever else it holds.
pub trait RunConfig: Serialize + DeserializeOwned {
    fn seed(&self) -> u64;
    fn device(&self) -> DeviceChoice;
    /// CPU threads for libtorch (0 = libtorch's default).
    fn threads(&self) -> usize;
    fn memory_format(&self) -> MemoryFormat;
    fn precision(&self) -> Precision;
    fn data(&self) -> &DataConfig;
    fn train(&self) -> &TrainConfig;
    /// Rejects impossible values, naming the field.
    fn validate(&self) -> Result<()>;

    /// A run folder's resolved configuration (`config.toml`), parsed and checked.
    fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: Self = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        config.validate().with_context(|| format!("{}", path.display()))?;
        Ok(config)
    }
}

/// An opened run: its configuration, folder, device and data.
pub struct Run<C> {
    pub config: C,
    /// The run folder; only rank 0 reads and writes it.
    pub out: PathBuf,
    pub resumed: bool,
    pub device: Device,
    /// The type the networks compute their activations in: the batches are given to them in it.
    pub kind: Kind,
    /// The ranks training together (one process: a single rank).
    pub dist: Dist,
    /// The training images.
    pub dataset: Arc<dyn Dataset>,
    /// The images of `dataset` that train (the `data.split` share, or all with `data.heldout_path`).
    pub train_idx: Vec<usize>,
    /// The data set `other_idx` indexes: `dataset`, or the images of `data.heldout_path`.
    pub other_set: Arc<dyn Dataset>,
    /// The held-out half of a search, the validation split of a retrain.
    pub other_idx: Vec<usize>,
    pub normalization: Normalization,
    pub in_channels: i64,
    pub num_classes: i64,
    /// (height, width) of a training image after the training transform.
    pub image_size: (i64, i64),
}

impl<C: RunConfig> Run<C> {
    /// Claims the folder of a new run (writing its configuration) or reads back the configuration of the run being
    /// resumed; then threads, device and the data, split. With several ranks, rank 0 alone does the folder's part
    /// and the others take its configuration.
    pub fn open(start: Start<C>, dist: Dist) -> Result<Self> {
        let out = start.out().to_path_buf();
        // Whether this rank claimed a new folder, and created it: a start that fails releases the claim.
        let mut claimed = None;
        let folder = if dist.is_root() {
            Self::folder(start).map(|(text, resumed, created)| {
                claimed = (!resumed).then_some(created);
                (text, resumed)
            })
        } else {
            Ok((String::new(), false))
        };
        let opened = dist.from_root(folder).and_then(|(text, resumed)| Self::opened(&text, resumed, out.clone(), dist));
        if let (Err(_), Some(created)) = (&opened, claimed) {
            report::release_run_folder(&out, created);
        }
        opened
    }

    /// The rest of [`Run::open`] once the run folder is settled: the device, the data and what they imply.
    fn opened(text: &str, resumed: bool, out: PathBuf, dist: Dist) -> Result<Self> {
        let config: C = toml::from_str(text).context("the configuration rank 0 sent")?;
        let (batch, micro) = (config.train().batch_size, config.train().micro_batches);
        crate::error::ensure!(
            batch % (dist.world() * micro) == 0,
            "train.batch_size {batch} is the global batch: it must be a multiple of the {} rank(s) times \
             train.micro_batches {micro}",
            dist.world()
        );
        let threads = match config.threads() {
            0 if dist.world() == 1 => super::settings::default_threads(),
            0 => None,
            given => Some(given),
        };
        if let Some(threads) = threads {
            tch::set_num_threads(threads as i32);
            if config.threads() == 0 {
                tracing::info!("{threads} CPU thread(s): the cores not busy at the start (--threads sets it)");
            }
        }
        let device = dist.device(config.device().resolve()?);
        config.precision().check(device)?;
        let parts = data::open_parts(config.data(), config.seed())?;
        // One class trains to a loss of zero and ranks nothing: a folder of one class folder is a mistake.
        crate::error::ensure!(
            parts.train.num_classes() >= 2,
            "{} holds {} class: a classifier needs at least 2 (point at the folder of class folders)",
            config.data().path.as_ref().map_or("the images".into(), |p| p.display().to_string()),
            parts.train.num_classes()
        );
        let first = parts.train.image(0).context("reading the first image")?;
        let transform = Transform { augment: config.train().augment, view: config.data().view() };
        let (height, width) =
            transform.output_size(first.height, first.width).with_context(|| parts.train.describe(0))?;
        let normalization = match &config.data().normalization {
            Some(n) => {
                crate::error::ensure!(
                    n.channels() == first.channels,
                    "data.normalization has {} channels, the images {}",
                    n.channels(),
                    first.channels
                );
                n.clone()
            }
            None => Normalization::for_dataset(parts.train.as_ref()),
        };
        Ok(Run {
            kind: config.precision().kind(),
            normalization,
            in_channels: first.channels as i64,
            num_classes: parts.train.num_classes() as i64,
            image_size: (height as i64, width as i64),
            config,
            out,
            resumed,
            device,
            dist,
            dataset: parts.train,
            train_idx: parts.train_idx,
            other_set: parts.other,
            other_idx: parts.other_idx,
        })
    }

    /// The run folder's part of [`Run::open`]: the configuration (as TOML), whether the run is resumed, and whether
    /// a new run created its folder.
    fn folder(start: Start<C>) -> Result<(String, bool, bool)> {
        match start {
            Start::New { config, out } => {
                config.validate()?;
                let text = toml::to_string_pretty(&config)?;
                let created = report::claim_run_folder(&out, &text)?;
                Ok((text, false, created))
            }
            Start::Resume { dir, machine } => {
                let config =
                    C::load(&dir.join(CONFIG_FILE)).context("resuming needs the run folder's configuration")?;
                let config = crate::config::layered(config, None, &machine)?;
                Ok((toml::to_string_pretty(&config)?, true, false))
            }
        }
    }

    /// Seeds libtorch and builds the model on a fresh variable store in the configured memory layout; every rank
    /// starts from rank 0's parameters and buffers.
    pub fn model<M>(&self, build: impl FnOnce(&tch::nn::Path) -> Result<M>) -> Result<(VarStore, M)> {
        tch::manual_seed(self.config.seed() as i64);
        let vs = VarStore::new(self.device);
        let model = build(&vs.root())?;
        self.config.memory_format().apply(&vs);
        self.dist.broadcast_vars(&vs)?;
        Ok((vs, model))
    }

    /// A training loader over `idx` of this run's training images with its normalisation, geometry, workers and
    /// seed, in a new shuffled order every epoch; with several ranks, this rank's equal part of every batch of
    /// `batch_size` (the global batch).
    pub fn loader(&self, idx: Vec<usize>, batch_size: usize, augment: Augment) -> Loader {
        self.make_loader(self.dataset.clone(), idx, batch_size, augment, true)
    }

    /// A loader over all of `other_idx` (held-out or validation images), in order.
    pub fn other_loader(&self, batch_size: usize, augment: Augment) -> Loader {
        self.loader_over(self.other_set.clone(), self.other_idx.clone(), batch_size, augment)
    }

    /// An evaluation loader over `idx` of another data set (a test split) with this run's normalisation, geometry,
    /// workers and seed, in order; with several ranks, this rank's part of every batch, unpadded (evaluation sums).
    pub fn loader_over(
        &self,
        dataset: Arc<dyn Dataset>,
        idx: Vec<usize>,
        batch_size: usize,
        augment: Augment,
    ) -> Loader {
        self.make_loader(dataset, idx, batch_size, augment, false)
    }

    fn make_loader(
        &self,
        dataset: Arc<dyn Dataset>,
        idx: Vec<usize>,
        batch_size: usize,
        augment: Augment,
        train: bool,
    ) -> Loader {
        let d = self.config.data();
        let config = LoaderConfig {
            batch_size,
            shuffle: train,
            drop_last: false,
            transform: Transform { augment, view: d.view() },
            normalization: self.normalization.clone(),
            workers: d.workers,
            prefetch: d.prefetch,
            seed: self.config.seed(),
            shard: Shard {
                rank: self.dist.rank(),
                world: self.dist.world(),
                pad: train.then(|| self.dist.world() * self.config.train().micro_batches),
            },
        };
        Loader::new(dataset, idx, config)
    }

    /// The result a finished run wrote, if it did (resuming a finished run returns it); rank 0 reads it for all.
    pub fn finished<R: Serialize + DeserializeOwned>(&self) -> Result<Option<R>> {
        let read = || -> Result<Option<R>> {
            let path = self.out.join("result.json");
            if !path.exists() {
                return Ok(None);
            }
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok(Some(serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?))
        };
        self.dist.from_root(if self.dist.is_root() { read() } else { Ok(None) })
    }
}

/// Where a step stands, for the job's step.
#[derive(Debug, Clone, Copy)]
pub struct StepContext {
    pub epoch: usize,
    /// Steps of this epoch done before this one.
    pub step: usize,
    /// Steps of the whole run done before this one.
    pub global_step: u64,
    pub lr: f64,
    /// Which part of the global batch this forward-backward pass trains on: rank × micro-batches + micro-batch (0 for
    /// one process without micro-batches), so that random draws (drop-path) can differ between parts and be the same
    /// however the parts are spread over ranks.
    pub part: usize,
}

/// What the trainer knows when an epoch's steps are done.
pub struct EpochEnd {
    pub epoch: usize,
    /// The LR at the epoch's first step.
    pub lr: f64,
    /// Loss and accuracy of the epoch's training steps.
    pub train: Means,
    pub last: bool,
    pub started: Instant,
}

/// What a training run does besides what every run does.
pub trait Job {
    /// One line of `metrics.jsonl`.
    type Epoch: Serialize + DeserializeOwned;
    /// More history for the checkpoints (kept beside the metrics in `state.json`).
    type Extra: Serialize + DeserializeOwned + Default;

    /// One optimisation step on a batch already on the device; returns the logits and the (mean) loss, which the
    /// trainer adds to its loss and accuracy sums.
    fn step(&mut self, x: &Tensor, y: &Tensor, ctx: StepContext, opt: &mut Sgd) -> Result<(Tensor, Tensor)>;

    /// Sums the job keeps on the device besides the trainer's, by name, for checkpoints. With several ranks each
    /// holds its own part during the epoch; when the epoch's steps are done they hold the sums over all ranks.
    fn accumulators(&self) -> Vec<(&str, &Tensor)> {
        Vec::new()
    }

    /// Takes back the sums of [`Job::accumulators`] from a checkpoint.
    fn restore(&mut self, saved: Vec<(String, Tensor)>) -> Result<()> {
        match saved.first() {
            Some((name, _)) => crate::error::bail!("unknown accumulator `{name}` in checkpoint"),
            None => Ok(()),
        }
    }

    /// The epoch's work after its steps (held-out or validation passes, files of its own); returns its metrics row.
    fn end_epoch(&mut self, end: &EpochEnd, extra: &mut Self::Extra) -> Result<Self::Epoch>;

    /// Whether the job has finished before its epoch budget (a search that has decided).
    fn done(&self, _extra: &Self::Extra) -> bool {
        false
    }
}

/// The loop's position and history: what a checkpoint needs besides tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History<E, X> {
    pub epoch: usize,
    pub step: usize,
    pub global_step: u64,
    /// Seconds trained, over all sessions of the run.
    pub train_seconds: f64,
    pub metrics: Vec<E>,
    #[serde(flatten)]
    pub extra: X,
}

impl<E, X: Default> Default for History<E, X> {
    fn default() -> Self {
        History { epoch: 0, step: 0, global_step: 0, train_seconds: 0.0, metrics: Vec::new(), extra: X::default() }
    }
}

/// Runs epochs of a [`Job`] with checkpoints and resume.
pub struct Trainer<'a> {
    out: &'a Path,
    device: Device,
    kind: Kind,
    dist: Dist,
    train: &'a TrainConfig,
    pub vs: VarStore,
    pub opt: Sgd,
    schedule: Box<dyn LrSchedule>,
    checkpoints: Checkpoints,
    progress: ProgressMode,
    stop_after_steps: Option<u64>,
}

impl<'a> Trainer<'a> {
    pub fn new<C: RunConfig>(run: &'a Run<C>, vs: VarStore, mut opt: Sgd, schedule: Box<dyn LrSchedule>) -> Self {
        opt.set_dist(run.dist.clone());
        Trainer {
            out: &run.out,
            device: run.device,
            kind: run.kind,
            dist: run.dist.clone(),
            train: run.config.train(),
            vs,
            opt,
            schedule,
            checkpoints: Checkpoints::new(run.out.join("checkpoints")),
            progress: ProgressMode::Auto,
            stop_after_steps: None,
        }
    }

    /// How progress shows; only rank 0 shows it.
    pub fn progress(mut self, mode: ProgressMode) -> Self {
        self.progress = if self.dist.is_root() { mode } else { ProgressMode::Hidden };
        self
    }

    /// Stop (as if killed) after this many training steps in all; for crash tests.
    pub fn stop_after_steps(mut self, steps: Option<u64>) -> Self {
        self.stop_after_steps = steps;
        self
    }

    /// Trains the remaining epochs over `loader`, resuming from the newest checkpoint if there is one; returns the
    /// whole history.
    pub fn fit<J: Job>(&mut self, job: &mut J, loader: &Loader) -> Result<History<J::Epoch, J::Extra>> {
        let (mut state, mut totals) = self.restore(job)?;
        let steps = loader.num_batches();
        let plan = StepSchedule {
            steps_per_epoch: steps,
            checkpoint_every: self.train.checkpoint_every,
            sync_every: self.train.sync_every,
            stop_after: self.stop_after_steps,
        };
        let epochs = self.train.epochs;
        let mut events = None;
        while state.epoch < epochs && !job.done(&state.extra) {
            let epoch = state.epoch;
            let first_lr = self.schedule.lr(epoch, 0, steps);
            let started = Instant::now();
            let mut progress = Progress::start(self.progress, format!("epoch {}/{epochs}", epoch + 1), steps as u64);
            for batch in loader.epoch(epoch as u64, state.step) {
                let Batch { x, y, .. } = batch?;
                let (x, y) = (x.to_device(self.device).to_kind(self.kind), y.to_device(self.device));
                let lr = self.schedule.lr(epoch, state.step, steps);
                let micro = self.train.micro_batches;
                for (k, (x, y)) in x.chunk(micro as i64, 0).iter().zip(y.chunk(micro as i64, 0).iter()).enumerate() {
                    let part = self.dist.rank() * micro + k;
                    let ctx = StepContext { epoch, step: state.step, global_step: state.global_step, lr, part };
                    self.opt.micro_batch(k, micro);
                    let (logits, loss) = job.step(x, y, ctx, &mut self.opt)?;
                    totals.add(&logits, &loss, y);
                }
                state.step += 1;
                state.global_step += 1;
                if plan.sync_due(state.step) {
                    let m = totals.means();
                    StepSchedule::ensure_finite(m.loss, epoch, state.step, &self.out.join("checkpoints"))?;
                    progress
                        .set(state.step as u64, || format!("loss {:.3} acc {:.1}% lr {lr:.4}", m.loss, 100.0 * m.top1));
                }
                if plan.checkpoint_due(state.step) {
                    // The checkpoint records the time trained so far, so that a resumed run reports its whole duration.
                    let before = state.train_seconds;
                    state.train_seconds += started.elapsed().as_secs_f64();
                    self.save(&state, &totals, job)?;
                    state.train_seconds = before;
                }
                plan.check_stop(state.global_step)?;
            }
            progress.finish();
            self.dist.all_reduce_sum(&Self::sums(&totals, job))?;
            // Every rank evaluates rank 0's network: the batch-norm statistics are the only state the ranks do not
            // share.
            self.dist.broadcast_buffers(&self.vs)?;
            self.dist.check_same_vars(&self.vs)?;
            let train = totals.means();
            crate::error::ensure!(
                train.loss.is_finite(),
                "training diverged: the epoch {} loss is {}",
                epoch + 1,
                train.loss
            );
            let end = EpochEnd { epoch, lr: first_lr, train, last: epoch + 1 == epochs, started };
            let row = job.end_epoch(&end, &mut state.extra)?;
            state.train_seconds += started.elapsed().as_secs_f64();
            state.metrics.push(row);
            state.epoch += 1;
            state.step = 0;
            totals = Totals::new(self.device);
            if self.dist.is_root() {
                write_jsonl(&self.out.join("metrics.jsonl"), &state.metrics)?;
            }
            self.save(&state, &totals, job)?;
            self.log_row(&mut events, &state)?;
        }
        Ok(state)
    }

    /// Rank 0 appends the epoch's row to this session's TensorBoard file (created with the first row). After the
    /// checkpoint: an epoch that a resumed run redoes was never logged, since the event files are append-only.
    fn log_row<E: Serialize, X>(&self, events: &mut Option<EventWriter>, state: &History<E, X>) -> Result<()> {
        let Some(row) = state.metrics.last().filter(|_| self.dist.is_root()) else { return Ok(()) };
        let events = match events {
            Some(writer) => writer,
            None => events.insert(EventWriter::create(self.out, tensorboard::now())?),
        };
        events.row(state.epoch as i64, row)
    }

    /// The trainer's and the job's running sums (handles to them).
    fn sums<J: Job>(totals: &Totals, job: &J) -> Vec<Tensor> {
        totals.named().into_iter().chain(job.accumulators()).map(|(_, t)| t.shallow_clone()).collect()
    }

    /// Rank 0 writes what every rank needs to resume: the shared weights and momentum, the loop's position, and the
    /// running sums over all ranks (a resumed rank 0 starts from them, the others from zero), so that a run resumes
    /// to the same numbers with any number of ranks.
    fn save<J: Job>(&self, state: &History<J::Epoch, J::Extra>, totals: &Totals, job: &J) -> Result<()> {
        let mut named = totals.named();
        named.extend(job.accumulators());
        let summed: Vec<Tensor> = named.iter().map(|(_, t)| t.copy()).collect();
        self.dist.all_reduce_sum(&summed)?;
        if !self.dist.is_root() {
            return Ok(());
        }
        let named: Vec<(&str, &Tensor)> = named.iter().map(|(n, _)| *n).zip(&summed).collect();
        self.checkpoints.save(state.global_step, &self.vs, &self.opt, &named, state)
    }

    /// The newest checkpoint, read by rank 0 and shared with the other ranks.
    #[allow(clippy::type_complexity)]
    fn restore<J: Job>(&mut self, job: &mut J) -> Result<(History<J::Epoch, J::Extra>, Totals)> {
        let latest = if self.dist.is_root() { self.checkpoints.latest() } else { Ok(None) };
        let Some(dir) = self.dist.from_root(latest)? else {
            return Ok((History::default(), Totals::new(self.device)));
        };
        let loaded = match self.dist.is_root() {
            true => Checkpoints::load(&dir, &mut self.vs, &mut self.opt).map(Some),
            false => Ok(None),
        };
        let loaded: Result<Option<(Vec<(String, Tensor)>, History<J::Epoch, J::Extra>)>> = loaded;
        // The other ranks get the position and history, and zero sums shaped as rank 0's (or rank 0's error).
        let message = match &loaded {
            Ok(Some((saved, state))) => {
                Ok((serde_json::to_value(state)?, saved.iter().map(|(n, t)| (n.clone(), t.size())).collect()))
            }
            Ok(None) => Ok((serde_json::Value::Null, Vec::new())),
            Err(e) => Err(crate::Error::Message(e.report())),
        };
        let (shared, shapes): (serde_json::Value, Vec<(String, Vec<i64>)>) = self.dist.from_root(message)?;
        let (mut saved, state) = match loaded? {
            Some(loaded) => loaded,
            None => {
                let zeros = |(n, size): (String, Vec<i64>)| (n, Tensor::zeros(size, (tch::Kind::Double, Device::Cpu)));
                (shapes.into_iter().map(zeros).collect(), serde_json::from_value(shared)?)
            }
        };
        self.dist.broadcast_vars(&self.vs)?;
        self.opt.share_momentum()?;
        tracing::info!("resuming from {} (epoch {}, step {})", dir.display(), state.epoch, state.step);
        let totals = Totals::restore(&mut saved, self.device)?;
        job.restore(saved.into_iter().map(|(n, t)| (n, t.to_device(self.device))).collect())?;
        Ok((state, totals))
    }
}

/// Forward of a whole data set without gradients, given to `forward` on `device` in `kind`; `forward` returns the
/// logits. Loss and accuracy sums stay on the device until the end, where they are summed over the ranks (each ran
/// its part of every batch).
pub fn evaluate(
    loader: &Loader,
    epoch: usize,
    (device, kind): (Device, Kind),
    dist: &Dist,
    mode: ProgressMode,
    label: &str,
    mut forward: impl FnMut(&Tensor) -> Tensor,
) -> Result<Means> {
    let mut totals = Totals::new(device);
    let mut progress = Progress::start(mode, label.to_string(), loader.num_batches() as u64);
    tch::no_grad(|| -> Result<()> {
        for (i, batch) in loader.epoch(epoch as u64, 0).enumerate() {
            let Batch { x, y, .. } = batch?;
            let (x, y) = (x.to_device(device).to_kind(kind), y.to_device(device));
            let logits = forward(&x);
            if y.size()[0] > 0 {
                totals.add(&logits, &logits.cross_entropy_for_logits(&y), &y);
            }
            progress.set(i as u64 + 1, String::new);
        }
        Ok(())
    })?;
    progress.finish();
    dist.all_reduce_sum(&totals.named().into_iter().map(|(_, t)| t.shallow_clone()).collect::<Vec<_>>())?;
    Ok(totals.means())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// The settings of a toy run on a few embedded images.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct ToyConfig {
        seed: u64,
        data: DataConfig,
        train: TrainConfig,
    }

    impl RunConfig for ToyConfig {
        fn seed(&self) -> u64 {
            self.seed
        }
        fn device(&self) -> DeviceChoice {
            DeviceChoice::Cpu
        }
        fn threads(&self) -> usize {
            0
        }
        fn memory_format(&self) -> MemoryFormat {
            MemoryFormat::Contiguous
        }
        fn precision(&self) -> Precision {
            Precision::Fp32
        }
        fn data(&self) -> &DataConfig {
            &self.data
        }
        fn train(&self) -> &TrainConfig {
            &self.train
        }
        fn validate(&self) -> Result<()> {
            self.train.validate()
        }
    }

    /// Linear decay from `lr` to 0 over every step of the run, stepped per iteration as the macro search's is.
    struct PerIteration {
        lr: f64,
        total: usize,
    }

    impl LrSchedule for PerIteration {
        fn lr(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
            self.lr * (1.0 - (epoch * steps_per_epoch + step) as f64 / self.total as f64)
        }
    }

    /// A loop unlike search and retrain: label smoothing, clipping by value, its own rates recorded.
    struct Toy<'a> {
        net: &'a tch::nn::Linear,
        rates: &'a RefCell<Vec<f64>>,
    }

    impl Job for Toy<'_> {
        type Epoch = f64;
        type Extra = ();

        fn step(&mut self, x: &Tensor, y: &Tensor, ctx: StepContext, opt: &mut Sgd) -> Result<(Tensor, Tensor)> {
            self.rates.borrow_mut().push(ctx.lr);
            let logits = x.flatten(1, -1).apply(self.net);
            let loss = logits.cross_entropy_loss::<Tensor>(y, None, tch::Reduction::Mean, -100, 0.1);
            opt.zero_grad();
            loss.backward();
            opt.clip_grad_value(5.0);
            opt.step(ctx.lr);
            Ok((logits, loss))
        }

        fn end_epoch(&mut self, end: &EpochEnd, _: &mut ()) -> Result<f64> {
            Ok(end.train.loss)
        }
    }

    /// Trains the toy loop in `out` (new or resumed); returns the rates of its steps and the final weight.
    fn toy(start: Start<ToyConfig>, stop_after: Option<u64>) -> Result<(Vec<f64>, Tensor)> {
        let run = Run::open(start, Dist::single())?;
        // Constant initial weights: the global generator `Run::model` seeds is shared with tests running alongside.
        let init = tch::nn::LinearConfig {
            ws_init: tch::nn::Init::Const(0.0),
            bs_init: Some(tch::nn::Init::Const(0.0)),
            bias: true,
        };
        let (vs, net) = run.model(|p| Ok(tch::nn::linear(p / "fc", 3 * 32 * 32, run.num_classes, init)))?;
        let opt = Sgd::new(&vs, 0.9, 4e-5, false).decay_only(|name, _| name.ends_with("weight"));
        let schedule = Box::new(PerIteration { lr: 0.05, total: 3 * 5 });
        let mut trainer =
            Trainer::new(&run, vs, opt, schedule).progress(ProgressMode::Hidden).stop_after_steps(stop_after);
        let loader = run.loader(run.train_idx.clone(), run.config.train.batch_size, Augment::none());
        let rates = RefCell::new(Vec::new());
        trainer.fit(&mut Toy { net: &net, rates: &rates }, &loader)?;
        Ok((rates.into_inner(), net.ws.copy()))
    }

    #[test]
    fn a_third_loop_runs_on_the_skeleton_and_resumes_to_the_same_weights() {
        let config = ToyConfig {
            seed: 3,
            // 2 images per class, half of them train: 10 images in batches of 2, five steps an epoch.
            data: DataConfig { per_class: 2, split: 0.5, workers: 1, ..DataConfig::default() },
            train: TrainConfig { epochs: 3, batch_size: 2, checkpoint_every: 2, ..TrainConfig::default() },
        };
        let dir = tempfile::tempdir().unwrap();
        let straight = dir.path().join("straight");
        let (rates, weights) = toy(Start::New { config: config.clone(), out: straight.clone() }, None).unwrap();
        assert_eq!(rates.len(), 15, "three epochs of five steps");
        for (k, lr) in rates.iter().enumerate() {
            assert!((lr - 0.05 * (1.0 - k as f64 / 15.0)).abs() < 1e-12, "step {k}: {lr}");
        }
        let metrics = std::fs::read_to_string(straight.join("metrics.jsonl")).unwrap();
        assert_eq!(metrics.lines().count(), 3);

        let stopped = dir.path().join("stopped");
        let err = toy(Start::New { config, out: stopped.clone() }, Some(7)).unwrap_err();
        assert!(err.to_string().contains("stopped after 7 steps"), "{err}");
        let (resumed_rates, resumed) =
            toy(Start::Resume { dir: stopped.clone(), machine: Overrides::default() }, None).unwrap();
        // It stopped right after the checkpoint of its 7th step (epoch 2, step 2 of 5) and picks up there.
        assert_eq!(resumed_rates, rates[7..], "the resumed run continues the schedule where it stopped");
        assert!(resumed.equal(&weights), "same weights as the straight run");
        assert_eq!(std::fs::read_to_string(stopped.join("metrics.jsonl")).unwrap().lines().count(), 3);
    }

    #[test]
    fn open_takes_the_heldout_folder_and_the_size_of_the_training_transform() {
        let dir = tempfile::tempdir().unwrap();
        // Photographs of several sizes: 3 classes, 4 training and 2 held-out images each.
        for (part, n) in [("train", 4), ("val", 2)] {
            for class in ["x", "y", "z"] {
                let folder = dir.path().join(part).join(class);
                std::fs::create_dir_all(&folder).unwrap();
                for k in 0..n {
                    let img =
                        image::RgbImage::from_fn(14 + k * 3, 11 + k, |x, y| image::Rgb([x as u8 * 9, y as u8 * 7, 60]));
                    img.save(folder.join(format!("{k}.png"))).unwrap();
                }
            }
        }
        let augment = Augment {
            hflip: true,
            random_resized_crop: Some(data::augment::RandomResizedCrop { size: 12, ..Default::default() }),
            ..Augment::none()
        };
        let data = DataConfig {
            path: Some(dir.path().join("train")),
            heldout_path: Some(dir.path().join("val")),
            resize: 10,
            crop: 8,
            workers: 1,
            normalization: Some(Normalization::imagenet()),
            ..DataConfig::default()
        };
        let config = ToyConfig { seed: 1, data, train: TrainConfig { augment, ..TrainConfig::default() } };
        let mut grey = config.clone();
        grey.data.normalization = Some(Normalization { mean: vec![0.5], std: vec![0.5] });
        let err = Run::open(Start::New { config: grey, out: dir.path().join("grey") }, Dist::single()).err().unwrap();
        assert!(err.to_string().contains("data.normalization has 1 channels, the images 3"), "{err}");
        let run = Run::open(Start::New { config, out: dir.path().join("run") }, Dist::single()).unwrap();
        assert_eq!(run.normalization, Normalization::imagenet());
        assert_eq!(run.image_size, (12, 12), "the random resized crop's size, not the first image's");
        assert_eq!((run.train_idx.len(), run.other_idx.len(), run.other_set.len()), (12, 6, 6));
        let train = run.loader(run.train_idx.clone(), 5, augment).epoch(0, 0).next().unwrap().unwrap();
        assert_eq!(train.x.size(), [5, 3, 12, 12]);
        let held: Vec<Batch> = run.other_loader(4, Augment::none()).epoch(0, 0).map(|b| b.unwrap()).collect();
        assert_eq!(held.iter().map(|b| b.x.size()).collect::<Vec<_>>(), [vec![4, 3, 8, 8], vec![2, 3, 8, 8]]);
        assert_eq!(held[1].indices, [4, 5], "the held-out images in order");
    }
}
