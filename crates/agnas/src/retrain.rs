//! Retraining a derived genotype from scratch and evaluating it (spec §3.2): the DARTS-space `NetworkCIFAR` with the
//! auxiliary head and drop-path, cosine SGD, cutout. The reported number is the final epoch's; the best epoch is
//! only ever chosen on a validation split carved from the training images, never on the test set.
use crate::config::DataFormat;
use crate::config::{DataConfig, DeviceChoice, MemoryFormat, Preset, TrainConfig};
use crate::data::augment::Augment;
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::{self, Dataset, Normalization, Split};
use crate::nn::{flops, weights};
use crate::report::{self, progress::ProgressMode, write_json, write_jsonl, Progress};
use crate::space::darts::{python, Genotype, NetworkCifar, NetworkConfig};
use crate::train::checkpoint::Checkpoints;
use crate::train::{CosineSchedule, Means, Sgd, StepSchedule, Totals};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Everything a retrain needs; written to the run folder's `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainConfig {
    /// A built-in name (agnas, darts_v1, darts_v2), a `genotype.json` (of a search or a bare genotype), or Python text.
    pub genotype: String,
    pub seed: u64,
    pub device: DeviceChoice,
    pub threads: usize,
    pub memory_format: MemoryFormat,
    /// Training images; `data.split` is the share that trains, the rest is the validation split (1 = none).
    pub data: DataConfig,
    /// Test images evaluated once, after the last epoch (e.g. CIFAR-10's test batch).
    pub test_data: Option<PathBuf>,
    pub test_format: DataFormat,
    pub network: NetworkConfig,
    pub train: TrainConfig,
    /// Weight of the auxiliary head's loss.
    pub auxiliary_weight: f64,
    /// Drop-path probability reached at the last epoch (ramped linearly from 0).
    pub drop_path: f64,
    pub eval_batch_size: usize,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        RetrainConfig {
            genotype: "agnas".into(),
            seed: 0,
            device: DeviceChoice::Auto,
            threads: 0,
            memory_format: MemoryFormat::Auto,
            data: DataConfig { split: 1.0, ..DataConfig::default() },
            test_data: None,
            test_format: DataFormat::Auto,
            network: NetworkConfig::default(),
            train: TrainConfig {
                epochs: 600,
                batch_size: 96,
                lr_min: 0.0,
                augment: Augment { crop_padding: 4, hflip: true, cutout: 16 },
                checkpoint_every: 500,
                ..TrainConfig::default()
            },
            auxiliary_weight: 0.4,
            drop_path: 0.2,
            eval_batch_size: 256,
        }
    }
}

impl RetrainConfig {
    pub fn preset(preset: Preset) -> Self {
        let base = RetrainConfig::default();
        match preset {
            Preset::Paper => base,
            Preset::Embedded => RetrainConfig {
                data: DataConfig { split: 0.8, ..base.data },
                network: NetworkConfig { channels: 16, layers: 8, ..base.network },
                train: TrainConfig { epochs: 10, checkpoint_every: 50, ..base.train },
                ..base
            },
            Preset::Smoke => RetrainConfig {
                data: DataConfig { per_class: 16, split: 0.75, ..base.data },
                network: NetworkConfig { channels: 4, layers: 5, ..base.network },
                train: TrainConfig { epochs: 2, batch_size: 16, checkpoint_every: 0, ..base.train },
                eval_batch_size: 32,
                ..base
            },
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Rejects impossible values, naming the field.
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        ensure!(
            self.data.split > 0.0 && self.data.split <= 1.0,
            "data.split (the training share) must be in (0, 1] (got {})",
            self.data.split
        );
        ensure!(self.data.workers > 0 && self.data.prefetch > 0, "data.workers and data.prefetch must be at least 1");
        ensure!((0.0..1.0).contains(&self.drop_path), "drop_path must be in [0, 1) (got {})", self.drop_path);
        ensure!(self.auxiliary_weight >= 0.0, "auxiliary_weight must be >= 0");
        ensure!(self.eval_batch_size > 0, "eval_batch_size must be at least 1");
        self.network.validate()
    }
}

/// A genotype from a built-in name, `random:<seed>`, a JSON file (a bare genotype, or a search's `genotype.json`),
/// or a file of Python text.
pub fn resolve_genotype(spec: &str) -> Result<Genotype> {
    if let Some(g) = Genotype::builtin(spec) {
        return Ok(g);
    }
    if let Some(seed) = spec.strip_prefix("random:") {
        let seed: u64 = seed.parse().with_context(|| format!("genotype `{spec}`: the seed must be an integer"))?;
        return Ok(Genotype::random(seed));
    }
    let path = Path::new(spec);
    if !path.exists() {
        bail!(
            "genotype `{spec}` is neither a built-in ({}), nor random:<seed>, nor an existing file",
            crate::space::darts::genotype::BUILTIN_NAMES.join(", ")
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading genotype {}", path.display()))?;
    let genotype = if text.trim_start().starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing genotype {}", path.display()))?;
        let inner = value.get("genotype").cloned().unwrap_or(value);
        serde_json::from_value(inner).with_context(|| format!("genotype {}", path.display()))?
    } else {
        python::parse(&text).with_context(|| format!("genotype {}", path.display()))?
    };
    genotype.validate().with_context(|| format!("genotype {}", path.display()))?;
    Ok(genotype)
}

/// What `agnas eval` needs to rebuild a retrained network: written as `model.json` beside `weights.safetensors`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    pub space: String,
    pub genotype: Genotype,
    pub network: NetworkConfig,
    pub in_channels: i64,
    pub num_classes: i64,
    pub normalization: Normalization,
}

impl ModelCard {
    pub fn build(&self, vs: &VarStore) -> NetworkCifar {
        NetworkCifar::new(&vs.root(), &self.network, &self.genotype, self.in_channels, self.num_classes)
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f64,
    pub drop_path: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub valid: Option<EvalMetrics>,
    pub seconds: f64,
}

/// Loss and accuracy of a network on a data set.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct EvalMetrics {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
    pub images: usize,
}

impl From<Means> for EvalMetrics {
    fn from(m: Means) -> Self {
        EvalMetrics { loss: m.loss, top1: m.top1, top5: m.top5, images: m.seen as usize }
    }
}

/// The epoch of highest validation accuracy.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct BestEpoch {
    pub epoch: usize,
    #[serde(flatten)]
    pub metrics: EvalMetrics,
}

/// What a finished retrain reports (`result.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetrainResult {
    pub genotype: String,
    pub seed: u64,
    pub params: i64,
    pub macs: u64,
    pub epochs: usize,
    /// The final epoch on the validation split (absent when no images were held out).
    pub final_valid: Option<EvalMetrics>,
    /// The best epoch on the validation split, for comparison only.
    pub best_valid: Option<BestEpoch>,
    /// The final network on `test_data`.
    pub test: Option<EvalMetrics>,
    pub train_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct LoopState {
    epoch: usize,
    step: usize,
    global_step: u64,
    train_seconds: f64,
    metrics: Vec<EpochMetrics>,
}

/// How a retrain is started.
pub struct RetrainRun {
    pub config: RetrainConfig,
    pub out: PathBuf,
    pub resume: bool,
    pub progress: ProgressMode,
    /// Stop (as if killed) after this many training steps; for crash tests.
    pub stop_after_steps: Option<u64>,
}

const CONFIG_FILE: &str = "config.toml";

/// Parameters outside the auxiliary head and MACs of one 32×32 image (or the data's size) in eval mode.
pub fn count(card: &ModelCard, image_size: (i64, i64)) -> (i64, u64) {
    let vs = VarStore::new(Device::Cpu);
    let net = card.build(&vs);
    let x = Tensor::zeros([1, card.in_channels, image_size.0, image_size.1], (Kind::Float, Device::Cpu));
    let (_, macs) = tch::no_grad(|| flops::count_macs(|| net.forward_t(&x, false, 0.0)));
    (crate::space::darts::network::count_params(&vs), macs)
}

/// Forward of a whole data set in eval mode.
pub fn evaluate(
    net: &NetworkCifar,
    loader: &Loader,
    device: Device,
    mode: ProgressMode,
    label: &str,
) -> Result<EvalMetrics> {
    let mut totals = Totals::new(device);
    let mut progress = Progress::start(mode, label.to_string(), loader.num_batches() as u64);
    tch::no_grad(|| -> Result<()> {
        for (i, batch) in loader.epoch(0, 0).enumerate() {
            let batch = batch?;
            let (x, y) = (batch.x.to_device(device), batch.y.to_device(device));
            let logits = net.forward_t(&x, false, 0.0).logits;
            totals.add(&logits, &logits.cross_entropy_for_logits(&y), &y);
            progress.set(i as u64 + 1, String::new);
        }
        Ok(())
    })?;
    progress.finish();
    Ok(totals.means().into())
}

fn loader(
    set: Arc<dyn Dataset>,
    idx: Vec<usize>,
    batch: usize,
    augment: Augment,
    shuffle: bool,
    norm: &Normalization,
    cfg: &RetrainConfig,
) -> Loader {
    let config = LoaderConfig {
        batch_size: batch,
        shuffle,
        drop_last: false,
        augment,
        normalization: norm.clone(),
        workers: cfg.data.workers,
        prefetch: cfg.data.prefetch,
        seed: cfg.seed,
    };
    Loader::new(set, idx, config)
}

/// The whole retrain; returns the result also written to `<out>/result.json`.
pub fn run(run: RetrainRun) -> Result<RetrainResult> {
    let out = &run.out;
    let cfg = if run.resume {
        RetrainConfig::load(&out.join(CONFIG_FILE)).context("resuming needs the run folder's config.toml")?
    } else {
        run.config.clone()
    };
    cfg.validate()?;
    let genotype = if run.resume {
        resolve_genotype(&out.join("genotype.json").to_string_lossy())?
    } else {
        resolve_genotype(&cfg.genotype)?
    };
    let checkpoints = Checkpoints::new(out.join("checkpoints"));
    if !run.resume {
        crate::search::start_run_folder(out, &toml::to_string_pretty(&cfg)?)?;
        write_json(&out.join("genotype.json"), &genotype)?;
    }
    if cfg.threads > 0 {
        tch::set_num_threads(cfg.threads as i32);
    }
    let device = cfg.device.resolve()?;
    let (set, train_idx, valid_idx) =
        data::open_and_split(cfg.data.path.as_deref(), cfg.data.format, cfg.data.per_class, cfg.data.split, cfg.seed)?;
    let first = set.image(0).context("reading the first image")?;
    let card = ModelCard {
        space: "darts".into(),
        genotype,
        network: cfg.network.clone(),
        in_channels: first.channels as i64,
        num_classes: set.num_classes() as i64,
        normalization: Normalization::for_dataset(set.as_ref()),
    };
    let (params, macs) = count(&card, (first.height as i64, first.width as i64));
    tracing::info!(
        "retrain: {} training / {} validation images, {} classes, {:.3} M params, {:.1} M MACs, device {device:?}",
        train_idx.len(),
        valid_idx.len(),
        card.num_classes,
        params as f64 / 1e6,
        macs as f64 / 1e6
    );

    tch::manual_seed(cfg.seed as i64);
    let mut vs = VarStore::new(device);
    let net = card.build(&vs);
    cfg.memory_format.apply(&vs);
    let mut opt = Sgd::new(&vs, cfg.train.momentum, cfg.train.weight_decay, cfg.train.nesterov);
    let schedule = CosineSchedule {
        lr: cfg.train.lr,
        lr_min: cfg.train.lr_min,
        epochs: cfg.train.epochs,
        step_at_epoch_start: cfg.train.lr_step_at_epoch_start,
    };
    let (mut state, mut totals) = match checkpoints.latest()? {
        Some(dir) if run.resume => {
            let (mut saved, state): (_, LoopState) = Checkpoints::load(&dir, &mut vs, &mut opt)?;
            tracing::info!("resuming from {} (epoch {}, step {})", dir.display(), state.epoch, state.step);
            (state, Totals::restore(&mut saved, device)?)
        }
        _ => (LoopState::default(), Totals::new(device)),
    };
    let norm = &card.normalization;
    let train_loader = loader(set.clone(), train_idx, cfg.train.batch_size, cfg.train.augment, true, norm, &cfg);
    let valid_loader = (!valid_idx.is_empty())
        .then(|| loader(set.clone(), valid_idx, cfg.eval_batch_size, Augment::none(), false, norm, &cfg));
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
        let drop_prob = cfg.drop_path * epoch as f64 / cfg.train.epochs as f64;
        let started = Instant::now();
        let mut progress =
            Progress::start(run.progress, format!("epoch {}/{}", epoch + 1, cfg.train.epochs), steps as u64);
        for batch in train_loader.epoch(epoch as u64, state.step) {
            let batch = batch?;
            let (x, y) = (batch.x.to_device(device), batch.y.to_device(device));
            // Drop-path masks come from a generator seeded by the step, so that a resumed run draws the same ones.
            tch::manual_seed((cfg.seed as i64).wrapping_mul(1_000_003).wrapping_add(state.global_step as i64));
            let output = net.forward_t(&x, true, drop_prob);
            let main = output.logits.cross_entropy_for_logits(&y);
            let loss = match &output.aux {
                Some(aux) => main + cfg.auxiliary_weight * aux.cross_entropy_for_logits(&y),
                None => main,
            };
            opt.zero_grad();
            loss.backward();
            opt.clip_and_step(lr, cfg.train.grad_clip);
            totals.add(&output.logits, &loss, &y);
            state.step += 1;
            state.global_step += 1;
            if schedule_steps.sync_due(state.step) {
                let m = totals.means();
                StepSchedule::ensure_finite(m.loss, epoch, state.step, &out.join("checkpoints"))?;
                progress.set(state.step as u64, || format!("loss {:.3} acc {:.1}% lr {lr:.4}", m.loss, 100.0 * m.top1));
            }
            if schedule_steps.checkpoint_due(state.step) {
                let before = state.train_seconds;
                state.train_seconds += started.elapsed().as_secs_f64();
                checkpoints.save(state.global_step, &vs, &opt, &totals.named(), &state)?;
                state.train_seconds = before;
            }
            schedule_steps.check_stop(state.global_step)?;
        }
        progress.finish();
        let train = totals.means();
        ensure!(train.loss.is_finite(), "training diverged: the epoch {} loss is {}", epoch + 1, train.loss);
        let valid = match &valid_loader {
            Some(l) => Some(evaluate(&net, l, device, run.progress, "validation")?),
            None => None,
        };
        state.train_seconds += started.elapsed().as_secs_f64();
        state.metrics.push(EpochMetrics {
            epoch: epoch + 1,
            lr,
            drop_path: drop_prob,
            train_loss: train.loss,
            train_acc: train.top1,
            valid,
            seconds: started.elapsed().as_secs_f64(),
        });
        tracing::info!(
            "epoch {}/{}: train loss {:.4} acc {:.2}%{}",
            epoch + 1,
            cfg.train.epochs,
            train.loss,
            100.0 * train.top1,
            valid.map_or(String::new(), |v| format!(", validation loss {:.4} acc {:.2}%", v.loss, 100.0 * v.top1))
        );
        state.epoch += 1;
        state.step = 0;
        totals = Totals::new(device);
        write_jsonl(&out.join("metrics.jsonl"), &state.metrics)?;
        checkpoints.save(state.global_step, &vs, &opt, &totals.named(), &state)?;
    }
    if out.join("result.json").exists() {
        let text = std::fs::read_to_string(out.join("result.json"))?;
        return Ok(serde_json::from_str(&text)?);
    }
    let test = match &cfg.test_data {
        Some(path) => {
            let test_set = data::open_split(Some(path), cfg.test_format, Split::Test)?;
            ensure!(
                test_set.num_classes() == card.num_classes as usize,
                "test data {} has {} classes, the training data {}",
                path.display(),
                test_set.num_classes(),
                card.num_classes
            );
            let idx = (0..test_set.len()).collect();
            let l = loader(test_set, idx, cfg.eval_batch_size, Augment::none(), false, norm, &cfg);
            Some(evaluate(&net, &l, device, run.progress, "test")?)
        }
        None => None,
    };
    let valids: Vec<(usize, EvalMetrics)> =
        state.metrics.iter().filter_map(|m| m.valid.map(|v| (m.epoch, v))).collect();
    let result = RetrainResult {
        genotype: cfg.genotype.clone(),
        seed: cfg.seed,
        params,
        macs,
        epochs: cfg.train.epochs,
        final_valid: valids.last().map(|v| v.1),
        best_valid: valids
            .iter()
            .max_by(|a, b| a.1.top1.total_cmp(&b.1.top1))
            .map(|&(epoch, metrics)| BestEpoch { epoch, metrics }),
        test,
        train_seconds: state.train_seconds,
    };
    report::atomic_write_with(&out.join("weights.safetensors"), |tmp| {
        weights::save(&vs, tmp, state.global_step as i64)
    })?;
    write_json(&out.join("model.json"), &card)?;
    write_json(&out.join("result.json"), &result)?;
    Ok(result)
}

/// Loads a retrained network from a run folder (`model.json` + `weights.safetensors`) onto `device`.
pub fn load_run(dir: &Path, device: Device) -> Result<(ModelCard, VarStore, NetworkCifar)> {
    let card_path = dir.join("model.json");
    let text = std::fs::read_to_string(&card_path)
        .with_context(|| format!("reading {} (is {} a finished retrain run?)", card_path.display(), dir.display()))?;
    let card: ModelCard = serde_json::from_str(&text).with_context(|| format!("parsing {}", card_path.display()))?;
    let vs = VarStore::new(device);
    let net = card.build(&vs);
    weights::load(&vs, &dir.join("weights.safetensors"))?;
    Ok((card, vs, net))
}
