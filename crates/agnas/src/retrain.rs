//! Retraining a derived genotype from scratch and evaluating it (spec §3.2): the DARTS-space `NetworkCIFAR` with the
//! auxiliary head and drop-path, cosine SGD, cutout. The reported number is the final epoch's; the best epoch is
//! only ever chosen on a validation split carved from the training images, never on the test set.
use crate::config::Preset;
use crate::data::augment::Augment;
use crate::data::loader::Loader;
use crate::data::{self, DataConfig, DataFormat, Normalization, Split};
use crate::nn::{flops, weights};
use crate::report::{self, progress::ProgressMode, write_json};
use crate::space::darts::{python, Genotype, NetworkCifar, NetworkConfig};
use crate::train::{self, CosineSchedule, EpochEnd, Job, Means, Run, Sgd, Start, StepContext, Trainer};
use crate::train::{DeviceChoice, MemoryFormat, TrainConfig};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
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

impl crate::train::RunConfig for RetrainConfig {
    fn seed(&self) -> u64 {
        self.seed
    }
    fn device(&self) -> DeviceChoice {
        self.device
    }
    fn threads(&self) -> usize {
        self.threads
    }
    fn memory_format(&self) -> MemoryFormat {
        self.memory_format
    }
    fn data(&self) -> &DataConfig {
        &self.data
    }
    fn train(&self) -> &TrainConfig {
        &self.train
    }
    fn validate(&self) -> Result<()> {
        RetrainConfig::validate(self)
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
    pub fn build(&self, p: &tch::nn::Path) -> NetworkCifar {
        NetworkCifar::new(p, &self.network, &self.genotype, self.in_channels, self.num_classes)
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

/// How a retrain is started.
pub struct RetrainRun {
    pub start: Start<RetrainConfig>,
    pub progress: ProgressMode,
    /// Stop (as if killed) after this many training steps; for crash tests.
    pub stop_after_steps: Option<u64>,
}

/// Parameters outside the auxiliary head and MACs of one 32×32 image (or the data's size) in eval mode.
pub fn count(card: &ModelCard, image_size: (i64, i64)) -> (i64, u64) {
    let vs = VarStore::new(Device::Cpu);
    let net = card.build(&vs.root());
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
    let means = train::evaluate(loader, 0, device, mode, label, |x| net.forward_t(x, false, 0.0).logits)?;
    Ok(means.into())
}

/// The retrain's part of the training loop: drop-path, the auxiliary head's loss, the validation pass.
struct RetrainJob<'a> {
    cfg: &'a RetrainConfig,
    net: &'a NetworkCifar,
    valid: Option<&'a Loader>,
    device: Device,
    progress: ProgressMode,
}

impl RetrainJob<'_> {
    /// Drop-path probability of an epoch: ramped linearly from 0 to `drop_path` at the last epoch.
    fn drop_prob(&self, epoch: usize) -> f64 {
        self.cfg.drop_path * epoch as f64 / self.cfg.train.epochs as f64
    }
}

impl Job for RetrainJob<'_> {
    type Epoch = EpochMetrics;
    type Extra = ();

    fn step(&mut self, x: &Tensor, y: &Tensor, ctx: StepContext, opt: &mut Sgd) -> Result<(Tensor, Tensor)> {
        // Drop-path masks come from a generator seeded by the step, so that a resumed run draws the same ones.
        tch::manual_seed((self.cfg.seed as i64).wrapping_mul(1_000_003).wrapping_add(ctx.global_step as i64));
        let output = self.net.forward_t(x, true, self.drop_prob(ctx.epoch));
        let main = output.logits.cross_entropy_for_logits(y);
        let loss = match &output.aux {
            Some(aux) => main + self.cfg.auxiliary_weight * aux.cross_entropy_for_logits(y),
            None => main,
        };
        opt.zero_grad();
        loss.backward();
        opt.clip_and_step(ctx.lr, self.cfg.train.grad_clip);
        Ok((output.logits, loss))
    }

    fn end_epoch(&mut self, end: &EpochEnd, _: &mut ()) -> Result<EpochMetrics> {
        let valid = match self.valid {
            Some(l) => Some(evaluate(self.net, l, self.device, self.progress, "validation")?),
            None => None,
        };
        let train = end.train;
        tracing::info!(
            "epoch {}/{}: train loss {:.4} acc {:.2}%{}",
            end.epoch + 1,
            self.cfg.train.epochs,
            train.loss,
            100.0 * train.top1,
            valid.map_or(String::new(), |v| format!(", validation loss {:.4} acc {:.2}%", v.loss, 100.0 * v.top1))
        );
        Ok(EpochMetrics {
            epoch: end.epoch + 1,
            lr: end.lr,
            drop_path: self.drop_prob(end.epoch),
            train_loss: train.loss,
            train_acc: train.top1,
            valid,
            seconds: end.started.elapsed().as_secs_f64(),
        })
    }
}

/// The whole retrain; returns the result also written to `<out>/result.json`.
pub fn run(retrain: RetrainRun) -> Result<RetrainResult> {
    let genotype = match &retrain.start {
        Start::New { config, .. } => resolve_genotype(&config.genotype)?,
        Start::Resume(dir) => resolve_genotype(&dir.join("genotype.json").to_string_lossy())?,
    };
    let run = Run::open(retrain.start)?;
    let (cfg, out) = (&run.config, &run.out);
    if !run.resumed {
        write_json(&out.join("genotype.json"), &genotype)?;
    }
    let card = ModelCard {
        space: "darts".into(),
        genotype,
        network: cfg.network.clone(),
        in_channels: run.in_channels,
        num_classes: run.num_classes,
        normalization: run.normalization.clone(),
    };
    let (params, macs) = count(&card, run.image_size);
    tracing::info!(
        "retrain: {} training / {} validation images, {} classes, {:.3} M params, {:.1} M MACs, device {:?}",
        run.train_idx.len(),
        run.other_idx.len(),
        card.num_classes,
        params as f64 / 1e6,
        macs as f64 / 1e6,
        run.device
    );
    let (vs, net) = run.model(|p| Ok(card.build(p)))?;
    let opt = Sgd::from_config(&vs, &cfg.train);
    let schedule = Box::new(CosineSchedule::from_config(&cfg.train));
    let mut trainer =
        Trainer::new(&run, vs, opt, schedule).progress(retrain.progress).stop_after_steps(retrain.stop_after_steps);
    let train_loader = run.loader(run.train_idx.clone(), cfg.train.batch_size, cfg.train.augment, true);
    let valid_loader = (!run.other_idx.is_empty())
        .then(|| run.loader(run.other_idx.clone(), cfg.eval_batch_size, Augment::none(), false));
    let mut job =
        RetrainJob { cfg, net: &net, valid: valid_loader.as_ref(), device: run.device, progress: retrain.progress };
    let history = trainer.fit(&mut job, &train_loader)?;
    if let Some(result) = run.finished()? {
        return Ok(result);
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
            let l = run.loader_over(test_set, idx, cfg.eval_batch_size, Augment::none(), false);
            Some(evaluate(&net, &l, run.device, retrain.progress, "test")?)
        }
        None => None,
    };
    let valids: Vec<(usize, EvalMetrics)> =
        history.metrics.iter().filter_map(|m| m.valid.map(|v| (m.epoch, v))).collect();
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
        train_seconds: history.train_seconds,
    };
    report::atomic_write_with(&out.join("weights.safetensors"), |tmp| {
        weights::save(&trainer.vs, tmp, history.global_step as i64)
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
    let net = card.build(&vs.root());
    weights::load(&vs, &dir.join("weights.safetensors"))?;
    Ok((card, vs, net))
}
