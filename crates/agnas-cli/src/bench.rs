//! `agnas bench`: time the supernet train step and its building blocks on random data.
use agnas::config::SearchConfig;
use agnas::data::loader::{Loader, LoaderConfig};
use agnas::nn::init::ConvSpec;
use agnas::nn::ops::{DilConv, FactorizedReduce, Pool, PoolKind, ReLUConvBN, SepConv};
use agnas::nn::{AfterRelu, Node, SeAttention};
use agnas::search::space_of;
use agnas::space::darts::CellKind;
use agnas::space::{darts, nb201, SpaceName};
use agnas::train::Sgd;
use agnas::train::{DeviceChoice, MemoryFormat};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::time::Instant;
use tch::nn::{self, ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Median time of one full train step (forward, loss, backward, clip, SGD) after warm-up, and of its
    /// forward, backward and optimizer parts; one JSON line.
    Step(StepArgs),
    /// Median forward and backward time of each building block of a supernet (ops, SE, mixed op, cell), on the
    /// shapes of the supernet's first stage; one JSON line per block. `tools/bench_reference.py --blocks` times
    /// the same blocks in PyTorch.
    Blocks(BlocksArgs),
}

#[derive(Args)]
pub struct StepArgs {
    #[arg(long, default_value = "nb201")]
    space: SpaceName,
    #[arg(long, default_value_t = 5)]
    steps: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: i64,
    /// CPU threads for libtorch (0 = its default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Supernet channels C (default: the paper's).
    #[arg(long)]
    channels: Option<i64>,
    /// NB201 cells per stage N (default: the paper's).
    #[arg(long)]
    cells_per_stage: Option<i64>,
    /// DARTS supernet cells (default: the paper's 8).
    #[arg(long)]
    layers: Option<usize>,
    /// auto (channels-last on the CPU), channels_last or contiguous.
    #[arg(long, default_value = "auto")]
    memory_format: MemoryFormat,
    /// Feed augmented batches of the embedded CIFAR-10 subset through the data loader instead of one random
    /// batch, so that loading (and real-data numerics) is part of the timed step.
    #[arg(long)]
    loader: bool,
    /// Only the forward and the loss (the autograd graph is built, then dropped): to profile the forward alone.
    #[arg(long)]
    forward_only: bool,
}

/// Peak resident memory of this process in MiB (VmHWM).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// A training loader over the embedded subset, configured as a search would.
fn embedded_batches(cfg: &SearchConfig, batch_size: usize) -> Result<Loader> {
    let set = agnas::data::open(None, cfg.data.format)?;
    let normalization = agnas::data::Normalization::for_dataset(set.as_ref());
    let indices = (0..set.len()).collect();
    let config = LoaderConfig {
        batch_size,
        shuffle: true,
        drop_last: true,
        augment: cfg.train.augment,
        normalization,
        workers: cfg.data.workers,
        prefetch: cfg.data.prefetch,
        seed: cfg.seed,
    };
    Ok(Loader::new(set, indices, config))
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Step(a) => step(a),
        BenchCommand::Blocks(a) => blocks(a),
    }
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Milliseconds since `t`, after the device has finished its queued work.
fn lap(t: &mut Instant, device: Device) -> f64 {
    sync(device);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    *t = Instant::now();
    ms
}

fn step(a: StepArgs) -> Result<()> {
    if a.threads > 0 {
        tch::set_num_threads(a.threads as i32);
    }
    let mut cfg = SearchConfig { space: a.space, ..SearchConfig::default() };
    cfg.nb201.channels = a.channels.unwrap_or(cfg.nb201.channels);
    cfg.nb201.cells_per_stage = a.cells_per_stage.unwrap_or(cfg.nb201.cells_per_stage);
    cfg.darts.channels = a.channels.unwrap_or(cfg.darts.channels);
    cfg.darts.layers = a.layers.unwrap_or(cfg.darts.layers);
    cfg.validate()?;
    let device = a.device.resolve()?;
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let supernet = space_of(&cfg).build(&vs.root(), 3, 10);
    a.memory_format.apply(&vs);
    let mut opt = Sgd::new(&vs, cfg.train.momentum, cfg.train.weight_decay, cfg.train.nesterov);
    let x = Tensor::randn([a.batch_size, 3, 32, 32], (Kind::Float, device));
    let y = Tensor::randint(10, [a.batch_size], (Kind::Int64, device));
    let batches = if a.loader { Some(embedded_batches(&cfg, a.batch_size as usize)?) } else { None };
    // Epoch after epoch, so that a long benchmark never runs out of real batches.
    let mut batches = batches.as_ref().map(|l| (0u64..).flat_map(move |e| l.epoch(e, 0)));
    let [mut whole, mut forward, mut backward, mut update] = std::array::from_fn(|_| Vec::with_capacity(a.steps));
    for i in 0..a.warmup + a.steps {
        sync(device);
        let start = Instant::now();
        let mut t = start;
        let (x, y) = match batches.as_mut().and_then(|b| b.next()) {
            Some(batch) => {
                let batch = batch?;
                (batch.x.to_device(device), batch.y.to_device(device))
            }
            None => (x.shallow_clone(), y.shallow_clone()),
        };
        // The parts of `agnas::search::train_step`, timed one by one.
        let loss = supernet.forward_t(&x, true).logits.cross_entropy_for_logits(&y);
        let forward_ms = lap(&mut t, device);
        let (backward_ms, update_ms) = if a.forward_only {
            drop(loss);
            (0.0, 0.0)
        } else {
            opt.zero_grad();
            loss.backward();
            let backward_ms = lap(&mut t, device);
            opt.clip_and_step(cfg.train.lr, cfg.train.grad_clip);
            (backward_ms, lap(&mut t, device))
        };
        if i >= a.warmup {
            whole.push(start.elapsed().as_secs_f64() * 1e3);
            forward.push(forward_ms);
            backward.push(backward_ms);
            update.push(update_ms);
        }
    }
    let mean = whole.iter().sum::<f64>() / whole.len().max(1) as f64;
    let line = serde_json::json!({
        "impl": "agnas",
        "space": cfg.space,
        "device": format!("{device:?}"),
        "batch_size": a.batch_size,
        "threads": tch::get_num_threads(),
        "channels": if a.space == SpaceName::Darts { cfg.darts.channels } else { cfg.nb201.channels },
        "cells_per_stage": cfg.nb201.cells_per_stage,
        "layers": cfg.darts.layers,
        "channels_last": a.memory_format.is_channels_last(device),
        "loader": a.loader,
        "forward_only": a.forward_only,
        "steps": a.steps,
        "median_ms": median(whole),
        "mean_ms": mean,
        "forward_ms": median(forward),
        "backward_ms": median(backward),
        "optimizer_ms": median(update),
        "peak_rss_mb": peak_rss_mb(),
    });
    outln!("{line}");
    Ok(())
}

#[derive(Args)]
pub struct BlocksArgs {
    #[arg(long, default_value = "nb201")]
    space: SpaceName,
    #[arg(long, default_value_t = 10)]
    iters: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: i64,
    /// Channels C of the blocks (the supernets' first stage).
    #[arg(long, default_value_t = 16)]
    channels: i64,
    /// CPU threads for libtorch (0 = its default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    #[arg(long, default_value = "auto")]
    memory_format: MemoryFormat,
}

/// A block's training-mode forward from its inputs.
type BlockForward = Box<dyn Fn(&[Tensor]) -> Tensor>;

/// A block under test: its input shapes and its forward.
struct Block {
    name: &'static str,
    inputs: Vec<Vec<i64>>,
    forward: BlockForward,
}

impl Block {
    fn new(name: &'static str, inputs: Vec<Vec<i64>>, forward: impl Fn(&[Tensor]) -> Tensor + 'static) -> Self {
        Block { name, inputs, forward: Box::new(forward) }
    }

    fn module(name: &'static str, input: Vec<i64>, m: impl ModuleT + 'static) -> Self {
        Block::new(name, vec![input], move |xs| m.forward_t(&xs[0], true))
    }

    /// A ReLU-first op, fed as the mixed op feeds it (the ReLU is part of the timed block).
    fn after_relu(name: &'static str, input: Vec<i64>, m: impl AfterRelu + 'static) -> Self {
        Block::new(name, vec![input], move |xs| m.forward_relu(&xs[0].relu(), true))
    }
}

/// The blocks of a space's supernet at channels `c` and batch `b`, 32×32, BN without affine parameters.
fn space_blocks(space: SpaceName, p: &nn::Path, c: i64, b: i64) -> Vec<Block> {
    let x = vec![b, c, 32, 32];
    let conv = |k: i64, spec: ConvSpec, name: &str| ReLUConvBN::new(p / name, c, c, k, spec, false);
    let pool = |kind, stride| Pool { kind, stride };
    match space {
        SpaceName::Nb201 => {
            let cfg = nb201::Nb201Config { channels: c, ..Default::default() };
            let se = SeAttention::new(p / "se", 5 * c, cfg.attention_ratio);
            let edge = nb201::supernet::mixed_op(p / "mixed_op", c, &cfg);
            let cell = nb201::supernet::SearchCell::new(p / "cell", c, &cfg);
            vec![
                Block::after_relu("relu_conv_bn_1x1", x.clone(), conv(1, ConvSpec::default(), "c1")),
                Block::after_relu("relu_conv_bn_3x3", x.clone(), conv(3, ConvSpec::default().padding(1), "c3")),
                Block::module("avg_pool_3x3", x.clone(), pool(PoolKind::Avg, 1)),
                Block::new("se_attention", vec![vec![b, 5 * c]], move |xs| se.excite(&xs[0])),
                Block::new("mixed_op", vec![x.clone()], move |xs| {
                    edge.forward_t(&Node::new(xs[0].shallow_clone()), true).out
                }),
                Block::new("cell", vec![x], move |xs| cell.forward_t(&xs[0], true).0),
            ]
        }
        SpaceName::Darts => {
            let cfg = darts::DartsConfig { channels: c, ..Default::default() };
            let pool_bn = |kind, name: &str| {
                let bn = agnas::nn::init::batch_norm2d(p / name / "1", c, false);
                move |xs: &[Tensor]| pool(kind, 1).forward_t(&xs[0], true).apply_t(&bn, true)
            };
            let edge = darts::supernet::mixed_op(p / "mixed_op", c, 1, cfg.attention_ratio);
            let edge_s2 = darts::supernet::mixed_op(p / "mixed_op_s2", c, 2, cfg.attention_ratio);
            let c_in = cfg.stem_multiplier * c;
            let cell = darts::supernet::SearchCell::new(p / "cell", &cfg, c_in, c_in, c, CellKind::Normal, false);
            vec![
                Block::after_relu("sep_conv_3x3", x.clone(), SepConv::new(p / "s3", c, c, 3, 1, false)),
                Block::after_relu("sep_conv_5x5", x.clone(), SepConv::new(p / "s5", c, c, 5, 1, false)),
                Block::after_relu("dil_conv_3x3", x.clone(), DilConv::new(p / "d3", c, c, 3, 1, 2, false)),
                Block::after_relu("dil_conv_5x5", x.clone(), DilConv::new(p / "d5", c, c, 5, 1, 2, false)),
                Block::new("max_pool_3x3_bn", vec![x.clone()], pool_bn(PoolKind::Max, "max")),
                Block::new("avg_pool_3x3_bn", vec![x.clone()], pool_bn(PoolKind::Avg, "avg")),
                Block::after_relu("factorized_reduce", x.clone(), FactorizedReduce::new(p / "fr", c, c, false)),
                Block::new("mixed_op", vec![x.clone()], move |xs| {
                    edge.forward_t(&Node::new(xs[0].shallow_clone()), true).out
                }),
                Block::new("mixed_op_s2", vec![x], move |xs| {
                    edge_s2.forward_t(&Node::new(xs[0].shallow_clone()), true).out
                }),
                Block::new("cell", vec![vec![b, c_in, 32, 32]; 2], move |xs| cell.forward_t(&xs[0], &xs[1], true).0),
            ]
        }
    }
}

fn blocks(a: BlocksArgs) -> Result<()> {
    if a.threads > 0 {
        tch::set_num_threads(a.threads as i32);
    }
    let device = a.device.resolve()?;
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let blocks = space_blocks(a.space, &vs.root(), a.channels, a.batch_size);
    a.memory_format.apply(&vs);
    let channels_last = a.memory_format.is_channels_last(device);
    let params = vs.trainable_variables();
    for block in &blocks {
        let layout = |t: Tensor| if channels_last { agnas::train::settings::to_channels_last(&t) } else { t };
        let inputs: Vec<Tensor> =
            block.inputs.iter().map(|s| layout(Tensor::randn(s.as_slice(), (Kind::Float, device)))).collect();
        let gy = tch::no_grad(|| (block.forward)(&inputs).randn_like());
        let (mut forward, mut backward) = (Vec::new(), Vec::new());
        for i in 0..a.warmup + a.iters {
            // Fresh leaves, so the input gradients are written, not accumulated, as in a network.
            let xs: Vec<Tensor> = inputs.iter().map(|x| x.detach().set_requires_grad(true)).collect();
            for p in &params {
                let mut p = p.shallow_clone();
                p.zero_grad();
            }
            sync(device);
            let mut t = Instant::now();
            let y = (block.forward)(&xs);
            let forward_ms = lap(&mut t, device);
            (&y * &gy).sum(Kind::Float).backward();
            let backward_ms = lap(&mut t, device);
            if i >= a.warmup {
                forward.push(forward_ms);
                backward.push(backward_ms);
            }
        }
        let line = serde_json::json!({
            "impl": "agnas",
            "space": a.space,
            "block": block.name,
            "device": format!("{device:?}"),
            "channels_last": channels_last,
            "batch_size": a.batch_size,
            "threads": tch::get_num_threads(),
            "iters": a.iters,
            "forward_ms": median(forward),
            "backward_ms": median(backward),
        });
        outln!("{line}");
    }
    Ok(())
}
