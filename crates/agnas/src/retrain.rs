//! Retraining a derived genotype's evaluation network from scratch and evaluating it (spec §3.2), for any space.
//! The reported number is the final epoch's; the best epoch is only ever chosen on a validation split carved from the
//! training images, never on the test set.
use crate::config::{Overrides, Preset, Recipe, RetrainConfig};
use crate::data::augment::Augment;
use crate::data::loader::Loader;
use crate::data::{self, Normalization, Split};
use crate::dist::Dist;
use crate::error::{ensure, Context, Result};
use crate::nn::weights;
use crate::report::{self, progress::ProgressMode, write_json};
use crate::space::{self, Counts, EvalNetwork, GenotypeFormat, Section, Space, TrainingStep};
use crate::train::{
    self, EpochEnd, Finished, Job, Launch, Launched, Means, Run, Sgd, Start, StepContext, TrainConfig, Trainer,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

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
        self.genotype.validate().context("genotype")
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
pub type RetrainRun<S> = Launched<RetrainConfig<S>>;

/// Forward of a whole data set in eval mode.
pub fn evaluate(
    net: &dyn EvalNetwork,
    loader: &Loader,
    on: (Device, Kind),
    dist: &Dist,
    mode: ProgressMode,
    label: &str,
) -> Result<EvalMetrics> {
    Ok(train::evaluate(loader, 0, on, dist, mode, label, |x| net.logits(x))?.into())
}

/// The retrain's part of the training loop: the network's own loss, the validation pass.
struct RetrainJob<'a> {
    seed: u64,
    train: &'a TrainConfig,
    net: &'a dyn EvalNetwork,
    valid: Option<&'a Loader>,
    on: (Device, Kind),
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
            Some(l) => Some(evaluate(self.net, l, self.on, self.dist, self.progress, "validation")?),
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

/// A retrain's configuration: preset ← file ← flags, with the recipe's architecture and images.
pub fn config<S: Space>(recipe: &Recipe) -> Result<RetrainConfig<S>> {
    let mut c = recipe.layered(S::retrain_preset)?;
    if let Some(genotype) = recipe.genotype {
        c.genotype = genotype.to_string();
    }
    if let Some(data) = recipe.data {
        c.data.path = Some(data.to_path_buf());
    }
    Ok(c)
}

/// The retrain a command asks for: a new one of the recipe's configuration, or the one it resumes.
pub fn launch<S: Space>(recipe: &Recipe, launch: Launch) -> Result<Finished<RetrainResult>> {
    let retrain = launch.with(|| {
        let config = config::<S>(recipe)?;
        ensure!(!config.genotype.is_empty(), "give the architecture to train: --genotype (or --arch)");
        let name = format!("train-{}-{}-seed{}", S::NAME, folder_word(&config.genotype), config.seed);
        Ok((config, name))
    })?;
    let out = retrain.start.out().to_path_buf();
    Ok(Finished { result: run::<S>(retrain)?, out })
}

/// A genotype as a folder name: a file's stem, or the text with everything but letters, digits, `-` and `_` dropped
/// (an NB201 arch string is all bars and tildes).
fn folder_word(genotype: &str) -> String {
    let stem = Path::new(genotype).file_stem().map_or(genotype.into(), |s| s.to_string_lossy());
    let word: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    if word.is_empty() {
        "genotype".into()
    } else {
        word.chars().take(60).collect()
    }
}

/// The whole retrain; returns the result also written to `<out>/result.json`.
pub fn run<S: Space>(retrain: RetrainRun<S>) -> Result<RetrainResult> {
    if let Start::New { config, .. } = &retrain.start {
        // A genotype that does not parse is refused before the run folder is claimed.
        S::Genotype::parse(&config.genotype)?;
    }
    let run = Run::open(retrain.start, retrain.dist)?;
    let (cfg, out) = (&run.config, &run.out);
    let progress = if run.dist.is_root() { retrain.progress } else { ProgressMode::Hidden };
    // The run's own copy once it has one: a run stopped before writing it resumes from its configuration.
    let saved = out.join("genotype.json");
    let genotype = if run.dist.is_root() && run.resumed && saved.exists() {
        S::Genotype::parse(&saved.to_string_lossy())?
    } else {
        let genotype = S::Genotype::parse(&cfg.genotype)?;
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
        on: (run.device, run.kind),
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
            Some(evaluate(net.as_ref(), &l, (run.device, run.kind), &run.dist, progress, "test")?)
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
type Loaded<S> = (ModelCard<S>, VarStore, Box<dyn EvalNetwork>);

/// The network a checked card describes, with the weights of `weights` (PyTorch names), on `device`.
fn load<S: Space>(card: ModelCard<S>, weights: &Path, device: Device) -> Result<Loaded<S>> {
    let vs = VarStore::new(device);
    let net = card.build(&vs.root());
    weights::load(&vs, weights)?;
    Ok((card, vs, net))
}

/// The evaluation network a command works on.
#[derive(Clone, Copy)]
pub enum NetworkSource<'a> {
    /// A finished retrain's folder (`model.json`, `weights.safetensors`).
    Run(&'a Path),
    /// The space's paper network of a genotype (as a user gives it), in the shape `shape` gives (a released or bare
    /// weights file may have been trained in another), for images like `images`.
    Paper { genotype: &'a str, shape: &'a Overrides, weights: Weights<'a>, images: Images<'a> },
}

/// Where a paper network's weights come from.
#[derive(Clone, Copy)]
pub enum Weights<'a> {
    /// A bare weights file (PyTorch names); the network's shape is fitted to the tensors it holds.
    File(&'a Path),
    /// Fresh weights drawn with a seed.
    Fresh { seed: i64 },
}

/// The images a paper network is built for.
#[derive(Clone, Copy)]
pub enum Images<'a> {
    /// Those of a data set: its channels, its classes, and the paper's normalisation (else the set's own).
    Of(&'a dyn data::Dataset),
    /// The space's benchmark: RGB, its classes unless given, the paper's normalisation (else CIFAR-10's, the
    /// benchmark of the spaces without one).
    Reference { num_classes: Option<i64> },
}

/// A loaded evaluation network and what commands need to know of it, in any space.
pub struct Network {
    pub vs: VarStore,
    pub net: Box<dyn EvalNetwork>,
    /// The genotype as its field writes it.
    pub genotype_text: String,
    pub in_channels: i64,
    pub num_classes: i64,
    pub normalization: Normalization,
    /// The evaluation geometry it was validated with (0 = not).
    pub resize: usize,
    pub crop: usize,
}

/// The space's paper network with the network shape of `shape` (the flags).
pub fn paper_network<S: Space>(shape: &Overrides) -> Result<RetrainConfig<S>> {
    let paper = crate::config::layered(S::retrain_preset(Preset::Paper), None, shape)?;
    paper.network.validate()?;
    Ok(paper)
}

/// Loads the network `source` names onto `device`.
pub fn network<S: Space>(source: NetworkSource, device: Device) -> Result<Network> {
    let (card, vs, net) = match source {
        NetworkSource::Run(dir) => load_run::<S>(dir, device)?,
        NetworkSource::Paper { genotype, shape, weights: from, images } => {
            let paper = paper_network::<S>(shape)?;
            let (in_channels, num_classes, normalization) = match images {
                Images::Of(set) => {
                    let first = set.image(0).context("reading the first image")?;
                    let own = || Normalization::for_dataset(set);
                    (first.channels as i64, set.num_classes() as i64, paper.data.normalization.unwrap_or_else(own))
                }
                Images::Reference { num_classes } => (
                    3,
                    num_classes.unwrap_or(S::REFERENCE_INPUT.1),
                    paper.data.normalization.unwrap_or_else(Normalization::cifar10),
                ),
            };
            let mut card = ModelCard::<S> {
                space: S::NAME.to_string(),
                genotype: S::Genotype::parse(genotype)?,
                network: paper.network,
                in_channels,
                num_classes,
                normalization,
                resize: paper.data.resize,
                crop: paper.data.crop,
            };
            match from {
                Weights::File(path) => {
                    let names = weights::names(path)?;
                    S::fit_to_weights(&mut card.network, &names.iter().map(String::as_str).collect::<Vec<_>>());
                    card.validate()?;
                    load(card, path, device)?
                }
                Weights::Fresh { seed } => {
                    card.validate()?;
                    tch::manual_seed(seed);
                    let vs = VarStore::new(device);
                    let net = card.build(&vs.root());
                    (card, vs, net)
                }
            }
        }
    };
    Ok(Network {
        vs,
        net,
        genotype_text: card.genotype.text(),
        in_channels: card.in_channels,
        num_classes: card.num_classes,
        normalization: card.normalization,
        resize: card.resize,
        crop: card.crop,
    })
}

/// A genotype's paper network as `agnas params` measures it.
#[derive(Debug, Clone, Copy)]
pub struct NetworkOf<'a> {
    /// The genotype (default: the paper preset's).
    pub genotype: Option<&'a str>,
    pub shape: &'a Overrides,
    /// Classes and input side (default: the space's benchmark).
    pub num_classes: Option<i64>,
    pub image_size: Option<i64>,
}

/// Parameters (as the space counts them) and MACs of one image, with the network they were counted on.
#[derive(Debug, Serialize)]
pub struct NetworkSize {
    pub space: &'static str,
    pub genotype: String,
    /// The network shape (the space's `[network]` section).
    #[serde(flatten)]
    pub network: serde_json::Value,
    pub num_classes: i64,
    pub image_size: i64,
    pub params: i64,
    pub params_m: f64,
    pub macs: u64,
    pub macs_m: f64,
    pub rule: &'static str,
    /// The FLOPs as the space's field counts them, where it has its own rule.
    #[serde(flatten)]
    pub flops: Option<space::FieldFlops>,
}

/// Counts the network `of` describes.
pub fn size<S: Space>(of: &NetworkOf) -> Result<NetworkSize> {
    let preset = paper_network::<S>(of.shape)?;
    let spec = of.genotype.map_or(preset.genotype, str::to_string);
    ensure!(!spec.is_empty(), "give the architecture: --genotype (or --arch)");
    let genotype = S::Genotype::parse(&spec)?;
    let (image_size, num_classes) =
        (of.image_size.unwrap_or(S::REFERENCE_INPUT.0), of.num_classes.unwrap_or(S::REFERENCE_INPUT.1));
    let Counts { params, macs } =
        space::count::<S>(&preset.network, &genotype, 3, num_classes, (image_size, image_size));
    let millions = |n: f64| (n / 1e4).round() / 100.0;
    Ok(NetworkSize {
        space: S::NAME,
        network: serde_json::to_value(&preset.network)?,
        flops: S::field_flops(&preset.network, &genotype, num_classes, image_size),
        genotype: spec,
        num_classes,
        image_size,
        params,
        params_m: millions(params as f64),
        macs,
        macs_m: millions(macs as f64),
        rule: "params outside any auxiliary head; MACs = conv and linear multiply-accumulates per image",
    })
}

/// Loads a retrained network from a run folder (`model.json` + `weights.safetensors`) onto `device`.
fn load_run<S: Space>(dir: &Path, device: Device) -> Result<Loaded<S>> {
    let (path, text) = report::read_model_json(dir)?;
    let card: ModelCard<S> = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    card.validate().with_context(|| format!("{}", path.display()))?;
    load(card, &dir.join("weights.safetensors"), device)
}
