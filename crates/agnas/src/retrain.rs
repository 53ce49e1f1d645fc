//! Retraining a derived genotype's evaluation network from scratch and evaluating it (spec §3.2), for any space.
//! The reported number is the final epoch's; the best epoch is only ever chosen on a validation split carved from the
//! training images, never on the test set.
use crate::config::RetrainConfig;
use crate::data::augment::Augment;
use crate::data::loader::Loader;
use crate::data::{self, Normalization, Split};
use crate::dist::Dist;
use crate::nn::weights;
use crate::report::{self, progress::ProgressMode, write_json};
use crate::space::{self, Counts, EvalNetwork, Section, Space, TrainingStep};
use crate::train::{self, EpochEnd, Job, Means, Run, Sgd, Start, StepContext, TrainConfig, Trainer};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Tensor};

/// What `agnas eval` needs to rebuild a retrained network: written as `model.json` beside `weights.safetensors`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ModelCard<S: Space> {
    pub space: String,
    pub genotype: S::Genotype,
    pub network: S::Network,
    pub in_channels: i64,
    pub num_classes: i64,
    pub normalization: Normalization,
    /// The evaluation geometry the network was validated with (`data.resize`, `data.crop`; 0 = not), which
    /// `agnas eval` applies again.
    #[serde(default)]
    pub resize: usize,
    #[serde(default)]
    pub crop: usize,
}

impl<S: Space> ModelCard<S> {
    pub fn build(&self, p: &tch::nn::Path) -> Box<dyn EvalNetwork> {
        S::build_network(&self.network, &self.genotype, p, self.in_channels, self.num_classes)
    }

    /// Parameters and MACs of one image of `image_size`.
    pub fn count(&self, image_size: (i64, i64)) -> Counts {
        space::count::<S>(&self.network, &self.genotype, self.in_channels, self.num_classes, image_size)
    }

    /// Checks what a user may have edited: the space, the network shape and the genotype.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.space == S::NAME, "space = \"{}\" where a {} network was expected", self.space, S::NAME);
        ensure!(self.in_channels >= 1 && self.num_classes >= 1, "in_channels and num_classes must be at least 1");
        self.network.validate()?;
        S::validate_genotype(&self.genotype).context("genotype")
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
pub struct RetrainRun<S: Space> {
    pub start: Start<RetrainConfig<S>>,
    pub progress: ProgressMode,
    /// Stop (as if killed) after this many training steps; for crash tests.
    pub stop_after_steps: Option<u64>,
    /// The ranks training together.
    pub dist: Dist,
}

/// Forward of a whole data set in eval mode.
pub fn evaluate(
    net: &dyn EvalNetwork,
    loader: &Loader,
    device: Device,
    dist: &Dist,
    mode: ProgressMode,
    label: &str,
) -> Result<EvalMetrics> {
    Ok(train::evaluate(loader, 0, device, dist, mode, label, |x| net.logits(x))?.into())
}

/// The retrain's part of the training loop: the network's own loss, the validation pass.
struct RetrainJob<'a> {
    seed: u64,
    train: &'a TrainConfig,
    net: &'a dyn EvalNetwork,
    valid: Option<&'a Loader>,
    device: Device,
    dist: &'a Dist,
    progress: ProgressMode,
}

impl Job for RetrainJob<'_> {
    type Epoch = EpochMetrics;
    type Extra = ();

    fn step(&mut self, x: &Tensor, y: &Tensor, ctx: StepContext, opt: &mut Sgd) -> Result<(Tensor, Tensor)> {
        // Drop-path masks come from a generator seeded by the step and the part of the batch, so that a resumed run
        // draws the same ones, and ranks the ones micro-batches would.
        let part = (ctx.part as i64) << 32;
        tch::manual_seed(
            (self.seed as i64).wrapping_mul(1_000_003).wrapping_add(ctx.global_step as i64).wrapping_add(part),
        );
        let step =
            TrainingStep { epoch: ctx.epoch, epochs: self.train.epochs, label_smoothing: self.train.label_smoothing };
        let (logits, loss) = self.net.training_loss(x, y, step);
        opt.zero_grad();
        loss.backward();
        opt.clip_and_step(ctx.lr, self.train.grad_clip, self.train.grad_clip_by)?;
        Ok((logits, loss))
    }

    fn end_epoch(&mut self, end: &EpochEnd, _: &mut ()) -> Result<EpochMetrics> {
        let valid = match self.valid {
            Some(l) => Some(evaluate(self.net, l, self.device, self.dist, self.progress, "validation")?),
            None => None,
        };
        let train = end.train;
        tracing::info!(
            "epoch {}/{}: train loss {:.4} acc {:.2}%{}",
            end.epoch + 1,
            self.train.epochs,
            train.loss,
            100.0 * train.top1,
            valid.map_or(String::new(), |v| format!(", validation loss {:.4} acc {:.2}%", v.loss, 100.0 * v.top1))
        );
        Ok(EpochMetrics {
            epoch: end.epoch + 1,
            lr: end.lr,
            drop_path: self.net.drop_path(end.epoch, self.train.epochs),
            train_loss: train.loss,
            train_acc: train.top1,
            valid,
            seconds: end.started.elapsed().as_secs_f64(),
        })
    }
}

/// The whole retrain; returns the result also written to `<out>/result.json`.
pub fn run<S: Space>(retrain: RetrainRun<S>) -> Result<RetrainResult> {
    if let Start::New { config, .. } = &retrain.start {
        // A genotype that does not parse is refused before the run folder is claimed.
        S::parse_genotype(&config.genotype)?;
    }
    let run = Run::open(retrain.start, retrain.dist)?;
    let (cfg, out) = (&run.config, &run.out);
    let progress = if run.dist.is_root() { retrain.progress } else { ProgressMode::Hidden };
    // The run's own copy once it has one: a run stopped before writing it resumes from its configuration.
    let saved = out.join("genotype.json");
    let genotype = if run.dist.is_root() && run.resumed && saved.exists() {
        S::parse_genotype(&saved.to_string_lossy())?
    } else {
        let genotype = S::parse_genotype(&cfg.genotype)?;
        if run.dist.is_root() {
            write_json(&saved, &genotype)?;
        }
        genotype
    };
    run.dist.agree("genotype", serde_json::to_string(&genotype)?.as_bytes())?;
    let card = ModelCard::<S> {
        space: S::NAME.to_string(),
        genotype,
        network: cfg.network.clone(),
        in_channels: run.in_channels,
        num_classes: run.num_classes,
        normalization: run.normalization.clone(),
        resize: cfg.data.resize,
        crop: cfg.data.crop,
    };
    let Counts { params, macs } = card.count(run.image_size);
    tracing::info!(
        "retrain ({}): {} training / {} validation images, {} classes, {:.3} M params, {:.1} M MACs, device {:?}",
        S::NAME,
        run.train_idx.len(),
        run.other_idx.len(),
        card.num_classes,
        params as f64 / 1e6,
        macs as f64 / 1e6,
        run.device
    );
    let (vs, net) = run.model(|p| Ok(card.build(p)))?;
    let opt = Sgd::from_config(&vs, &cfg.train);
    let schedule = train::schedule(&cfg.train);
    let mut trainer =
        Trainer::new(&run, vs, opt, schedule).progress(progress).stop_after_steps(retrain.stop_after_steps);
    let train_loader = run.loader(run.train_idx.clone(), cfg.train.batch_size, cfg.train.augment);
    let valid_loader = (!run.other_idx.is_empty()).then(|| run.other_loader(cfg.eval_batch_size, Augment::none()));
    let mut job = RetrainJob {
        seed: cfg.seed,
        train: &cfg.train,
        net: net.as_ref(),
        valid: valid_loader.as_ref(),
        device: run.device,
        dist: &run.dist,
        progress,
    };
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
            let l = run.loader_over(test_set, idx, cfg.eval_batch_size, Augment::none());
            Some(evaluate(net.as_ref(), &l, run.device, &run.dist, progress, "test")?)
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
    if !run.dist.is_root() {
        return Ok(result);
    }
    report::atomic_write_with(&out.join("weights.safetensors"), |tmp| {
        weights::save(&trainer.vs, tmp, history.global_step as i64)
    })?;
    write_json(&out.join("model.json"), &card)?;
    write_json(&out.join("result.json"), &result)?;
    Ok(result)
}

/// A retrained network on its device: what it is, its weights, and the network.
pub type Loaded<S> = (ModelCard<S>, VarStore, Box<dyn EvalNetwork>);

/// The network a checked card describes, with the weights of `weights` (PyTorch names), on `device`.
pub fn load<S: Space>(card: ModelCard<S>, weights: &Path, device: Device) -> Result<Loaded<S>> {
    let vs = VarStore::new(device);
    let net = card.build(&vs.root());
    weights::load(&vs, weights)?;
    Ok((card, vs, net))
}

/// A network from a bare weights file (PyTorch names), built from `genotype` and `network` fitted to what the file
/// holds, for images like those of `set`.
/// Loads a bare weights file as a network of `genotype` and `network` shape; `data` (the space's paper preset's)
/// gives the normalisation (else the set's own) and the evaluation geometry.
pub fn load_weights<S: Space>(
    path: &Path,
    genotype: S::Genotype,
    mut network: S::Network,
    data: &data::DataConfig,
    set: &dyn data::Dataset,
    device: Device,
) -> Result<Loaded<S>> {
    let names = weights::names(path)?;
    S::fit_to_weights(&mut network, &names.iter().map(String::as_str).collect::<Vec<_>>());
    let first = set.image(0).context("reading the first image")?;
    let card = ModelCard::<S> {
        space: S::NAME.to_string(),
        genotype,
        network,
        in_channels: first.channels as i64,
        num_classes: set.num_classes() as i64,
        normalization: data.normalization.clone().unwrap_or_else(|| Normalization::for_dataset(set)),
        resize: data.resize,
        crop: data.crop,
    };
    card.validate()?;
    load(card, path, device)
}

/// Loads a retrained network from a run folder (`model.json` + `weights.safetensors`) onto `device`.
pub fn load_run<S: Space>(dir: &Path, device: Device) -> Result<Loaded<S>> {
    let (path, text) = report::read_model_json(dir)?;
    let card: ModelCard<S> = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    card.validate().with_context(|| format!("{}", path.display()))?;
    load(card, &dir.join("weights.safetensors"), device)
}
