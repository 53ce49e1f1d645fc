//! `agnas bench`: time the supernet train step on random data.
use agnas::config::{DeviceChoice, SearchConfig};
use agnas::data::loader::{Loader, LoaderConfig};
use agnas::search::{space_of, train_step};
use agnas::space::SpaceName;
use agnas::train::Sgd;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Median time of one full train step (forward, loss, backward, clip, SGD) after warm-up; one JSON line.
    Step(StepArgs),
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
    /// Channels-last memory format for activations and conv weights.
    #[arg(long)]
    channels_last: bool,
    /// Feed augmented batches of the embedded CIFAR-10 subset through the data loader instead of one random
    /// batch, so that loading (and real-data numerics) is part of the timed step.
    #[arg(long)]
    loader: bool,
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
    let BenchCommand::Step(a) = cmd;
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
    let mut opt = Sgd::new(&vs, cfg.train.momentum, cfg.train.weight_decay, cfg.train.nesterov);
    let mut x = Tensor::randn([a.batch_size, 3, 32, 32], (Kind::Float, device));
    if a.channels_last {
        agnas::nn::vars_to_channels_last(&vs);
        x = agnas::nn::to_channels_last(&x);
    }
    let y = Tensor::randint(10, [a.batch_size], (Kind::Int64, device));
    let batches = if a.loader { Some(embedded_batches(&cfg, a.batch_size as usize)?) } else { None };
    // Epoch after epoch, so that a long benchmark never runs out of real batches.
    let mut batches = batches.as_ref().map(|l| (0u64..).flat_map(move |e| l.epoch(e, 0)));
    let mut times = Vec::with_capacity(a.steps);
    for i in 0..a.warmup + a.steps {
        sync(device);
        let t = Instant::now();
        let (x, y) = match batches.as_mut().and_then(|b| b.next()) {
            Some(batch) => {
                let batch = batch?;
                let x = batch.x.to_device(device);
                (if a.channels_last { agnas::nn::to_channels_last(&x) } else { x }, batch.y.to_device(device))
            }
            None => (x.shallow_clone(), y.shallow_clone()),
        };
        let _ = train_step(supernet.as_ref(), &mut opt, &x, &y, cfg.train.lr, cfg.train.grad_clip);
        sync(device);
        if i >= a.warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    let line = serde_json::json!({
        "impl": "agnas",
        "space": cfg.space,
        "device": format!("{device:?}"),
        "batch_size": a.batch_size,
        "threads": tch::get_num_threads(),
        "channels": if a.space == SpaceName::Darts { cfg.darts.channels } else { cfg.nb201.channels },
        "cells_per_stage": cfg.nb201.cells_per_stage,
        "layers": cfg.darts.layers,
        "channels_last": a.channels_last,
        "loader": a.loader,
        "steps": a.steps,
        "median_ms": median,
        "mean_ms": mean,
        "peak_rss_mb": peak_rss_mb(),
    });
    outln!("{line}");
    Ok(())
}
