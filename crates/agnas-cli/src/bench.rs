//! `agnas bench`: time the supernet train step and its building blocks on random data, and the data loader on a
//! folder of images.
use crate::flags::{Settings, SupernetShape};
use crate::parse_space;
use agnas::data::augment::{Augment, CenterView, ColorJitter, RandomResizedCrop, Transform};
use agnas::data::folder::FolderDataset;
use agnas::data::loader::{Loader, LoaderConfig, Shard};
use agnas::data::{Dataset, Normalization};
use agnas::dist::{Dist, DistChoice};
use agnas::registry::{self, SupernetBench};
use agnas::space::SpaceName;
use agnas::train::{cross_entropy, Sgd};
use agnas::train::{DeviceChoice, MemoryFormat, Precision};
use anyhow::{ensure, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tch::nn::VarStore;
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
    /// Images per second through the data loader over a folder of JPEG/PNG class folders, decoded on demand in its
    /// worker threads: the ImageNet training transform (RandomResizedCrop, flip, ColorJitter 0.4/0.4/0.4/0.2,
    /// normalise) or, with --eval, Resize + CenterCrop; one JSON line. `tools/bench_loader.py` times torchvision's
    /// PIL pipeline on the same folder.
    Loader(LoaderArgs),
    /// Median time of an in-place all-reduce (sum) of one f32 tensor among the ranks that launched it (`agnas launch
    /// -n 2 -- bench allreduce`, torchrun, mpirun); one JSON line from rank 0.
    Allreduce(AllreduceArgs),
}

#[derive(Args)]
pub struct AllreduceArgs {
    /// Elements of the tensor (f32; the default is 16.8 MB).
    #[arg(long, default_value_t = 4 << 20)]
    elements: i64,
    /// Timed all-reduces, after two untimed ones.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// The engine, as for `search`.
    #[arg(long, default_value = "auto", value_parser = crate::parse_named::<DistChoice>)]
    dist: DistChoice,
}

fn allreduce(a: &AllreduceArgs) -> Result<()> {
    let dist = Dist::connect(a.dist, Device::Cpu, Duration::from_secs(300))?;
    let mut t = Tensor::ones([a.elements], (Kind::Float, Device::Cpu));
    let mut times = Vec::with_capacity(a.rounds);
    for i in 0..a.rounds + 2 {
        let _ = t.fill_(1.0);
        dist.barrier()?;
        let start = Instant::now();
        dist.all_reduce_sum(std::slice::from_ref(&t))?;
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let bytes = a.elements * 4;
    ensure!(t.double_value(&[a.elements - 1]) == dist.world() as f64, "the all-reduce summed wrongly");
    if dist.is_root() {
        let ms = median(times);
        outln!(
            "{}",
            serde_json::json!({
                "engine": format!("{dist:?}"),
                "ranks": dist.world(),
                "megabytes": bytes as f64 / 1e6,
                "median_ms": ms,
                "algorithm_gb_per_s": bytes as f64 / ms / 1e6,
            })
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct StepArgs {
    /// The space whose supernet is timed.
    #[arg(long, default_value = "nb201", value_parser = parse_space)]
    space: SpaceName,
    /// Timed training steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed passes first (allocator and kernel warm-up).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Images per step (over all ranks when launched as several).
    #[arg(long, default_value_t = 64)]
    batch_size: i64,
    /// Data parallelism, as for `search`: under `agnas launch`, torchrun or mpirun the step runs on each rank's part of
    /// the batch and the line adds the gradient all-reduce's time.
    #[arg(long, default_value = "auto", value_parser = crate::parse_named::<DistChoice>)]
    dist: DistChoice,
    /// CPU threads for libtorch (0 = its default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// auto, cpu or cuda.
    #[arg(long, value_parser = crate::parse_named::<DeviceChoice>, default_value = "auto")]
    device: DeviceChoice,
    /// The supernet's shape, when not the paper's.
    #[command(flatten)]
    pub(crate) shape: Settings<SupernetShape>,
    /// Side of the random input images in pixels.
    #[arg(long, default_value_t = 32)]
    image_size: i64,
    /// Memory layout: auto (channels-last on the CPU), channels_last or contiguous.
    #[arg(long, value_parser = crate::parse_named::<MemoryFormat>, default_value = "auto")]
    memory_format: MemoryFormat,
    /// Feed augmented batches of the embedded CIFAR-10 subset through the data loader instead of one random
    /// batch, so that loading (and real-data numerics) is part of the timed step.
    #[arg(long)]
    loader: bool,
    /// Activations' type, as for `search`: fp32 or bf16 (mixed precision, fp32 weights).
    #[arg(long, value_parser = crate::parse_named::<Precision>, default_value = "fp32")]
    precision: Precision,
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
fn embedded_batches(cfg: &SupernetBench, batch_size: usize) -> Result<Loader> {
    let set = agnas::data::open(None, cfg.data.format)?;
    let normalization = agnas::data::Normalization::for_dataset(set.as_ref());
    let indices = (0..set.len()).collect();
    let config = LoaderConfig {
        batch_size,
        shuffle: true,
        drop_last: true,
        transform: Transform { augment: cfg.train.augment, view: cfg.data.view() },
        normalization,
        workers: cfg.data.workers,
        prefetch: cfg.data.prefetch,
        seed: cfg.seed,
        shard: Shard::default(),
    };
    Ok(Loader::new(set, indices, config))
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Step(a) => step(&a),
        BenchCommand::Blocks(a) => blocks(&a),
        BenchCommand::Loader(a) => loader(&a),
        BenchCommand::Allreduce(a) => allreduce(&a),
    }
}

#[derive(Args)]
pub struct LoaderArgs {
    /// Class folders of images (or a folder whose train/ holds them).
    #[arg(long)]
    data: PathBuf,
    /// Side of the square images the transform puts out.
    #[arg(long, alias = "size", default_value_t = 224)]
    image_size: usize,
    /// Resize the shorter side to --resize, then crop the centre --image-size square, instead of the training transform.
    #[arg(long)]
    eval: bool,
    /// Shorter side after resizing (the ImageNet evaluation transform).
    #[arg(long, default_value_t = 256)]
    resize: usize,
    /// Loader threads decoding and transforming.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Batches timed after the first, which starts the threads and is not timed (default: one pass over the
    /// folder).
    #[arg(long)]
    batches: Option<usize>,
}

/// The training transform of the ImageNet searches at `size`.
fn imagenet_training(size: usize) -> Augment {
    Augment {
        hflip: true,
        random_resized_crop: Some(RandomResizedCrop { size, ..RandomResizedCrop::default() }),
        color_jitter: Some(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.2 }),
        ..Augment::none()
    }
}

fn loader(a: &LoaderArgs) -> Result<()> {
    let set = Arc::new(FolderDataset::open(&a.data, None)?);
    let transform = if a.eval {
        Transform { augment: Augment::none(), view: CenterView { resize: a.resize, crop: a.image_size } }
    } else {
        Transform { augment: imagenet_training(a.image_size), view: CenterView::default() }
    };
    ensure!(a.image_size > 0, "--image-size must be at least 1");
    ensure!(
        !a.eval || a.image_size <= a.resize,
        "--image-size {} must not exceed --resize {} with --eval",
        a.image_size,
        a.resize
    );
    let config = LoaderConfig {
        batch_size: a.batch_size,
        shuffle: true,
        drop_last: true,
        transform,
        normalization: Normalization::imagenet(),
        workers: a.workers,
        prefetch: 2 * a.workers,
        seed: 0,
        shard: Shard::default(),
    };
    let loader = Loader::new(set.clone(), (0..set.len()).collect(), config);
    let batches = a.batches.unwrap_or(loader.num_batches().saturating_sub(1));
    ensure!(
        batches > 0 && batches < loader.num_batches(),
        "{} holds {} batches of {}: the first is not timed, so time 1 to {} more",
        a.data.display(),
        loader.num_batches(),
        a.batch_size,
        loader.num_batches().saturating_sub(1)
    );
    let mut epoch = loader.epoch(0, 0);
    epoch.next().context("no first batch")??;
    let start = Instant::now();
    let mut images = 0;
    for batch in epoch.take(batches) {
        images += batch?.indices.len();
    }
    let seconds = start.elapsed().as_secs_f64();
    let per_second = images as f64 / seconds;
    let line = serde_json::json!({
        "impl": "agnas",
        "transform": if a.eval { "eval" } else { "train" },
        "size": a.image_size,
        "workers": a.workers,
        "batch_size": a.batch_size,
        "images": images,
        "seconds": seconds,
        "images_per_s": per_second,
        "images_per_s_per_worker": per_second / a.workers.max(1) as f64,
    });
    outln!("{line}");
    Ok(())
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

fn step(a: &StepArgs) -> Result<()> {
    if a.threads > 0 {
        tch::set_num_threads(a.threads as i32);
    }
    let cfg = registry::space(a.space).supernet_bench(&a.shape.given)?;
    a.precision.check(a.device.resolve()?)?;
    let dist = Dist::connect(a.dist, a.device.resolve()?, Duration::from_secs(300))?;
    let device = dist.device(a.device.resolve()?);
    let world = dist.world() as i64;
    ensure!(a.batch_size % world == 0, "--batch-size {} must be a multiple of the {world} ranks", a.batch_size);
    ensure!(!(a.loader && world > 1), "--loader times one process's loader: run it without other ranks");
    let per_rank = a.batch_size / world;
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let supernet = (cfg.build)(&vs.root());
    a.memory_format.apply(&vs);
    dist.broadcast_vars(&vs)?;
    let mut opt = Sgd::from_config(&vs, &cfg.train);
    opt.set_dist(dist.clone());
    tch::manual_seed(1 + dist.rank() as i64);
    let x = Tensor::randn([per_rank, 3, a.image_size, a.image_size], (Kind::Float, device));
    let y = Tensor::randint(10, [per_rank], (Kind::Int64, device));
    let batches = if a.loader { Some(embedded_batches(&cfg, a.batch_size as usize)?) } else { None };
    // Epoch after epoch, so that a long benchmark never runs out of real batches.
    let mut batches = batches.as_ref().map(|l| (0u64..).flat_map(move |e| l.epoch(e, 0)));
    let [mut whole, mut forward, mut backward, mut wait, mut reduce, mut update] =
        std::array::from_fn(|_| Vec::with_capacity(a.steps));
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
        let x = x.to_kind(a.precision.kind());
        // The parts of `agnas::search::train_step`, timed one by one.
        let loss = cross_entropy(&supernet.forward_t(&x, true).logits, &y, cfg.train.label_smoothing);
        let forward_ms = lap(&mut t, device);
        let (backward_ms, wait_ms, reduce_ms, update_ms) = if a.forward_only {
            drop(loss);
            (0.0, 0.0, 0.0, 0.0)
        } else {
            opt.zero_grad();
            loss.backward();
            let backward_ms = lap(&mut t, device);
            // The slower ranks' lag, apart from the all-reduce itself.
            dist.barrier()?;
            let wait_ms = lap(&mut t, device);
            opt.average_grads()?;
            let reduce_ms = lap(&mut t, device);
            opt.clip_and_step(cfg.train.lr, cfg.train.grad_clip, cfg.train.grad_clip_by)?;
            (backward_ms, wait_ms, reduce_ms, lap(&mut t, device))
        };
        if i >= a.warmup {
            whole.push(start.elapsed().as_secs_f64() * 1e3);
            forward.push(forward_ms);
            backward.push(backward_ms);
            wait.push(wait_ms);
            reduce.push(reduce_ms);
            update.push(update_ms);
        }
    }
    // Every rank timed its own steps; rank 0's speak for the run (the all-reduce keeps them in step).
    dist.barrier()?;
    if !dist.is_root() {
        return Ok(());
    }
    let mean = whole.iter().sum::<f64>() / whole.len().max(1) as f64;
    let min = whole.iter().copied().fold(f64::NAN, f64::min);
    let mut line = serde_json::json!({
        "impl": "agnas",
        "space": a.space,
        "device": format!("{device:?}"),
        "batch_size": a.batch_size,
        "size": a.image_size,
        "threads": tch::get_num_threads(),
        "ranks": world,
        "engine": format!("{dist:?}"),
    });
    if let (Some(map), serde_json::Value::Object(shape)) = (line.as_object_mut(), cfg.shape.clone()) {
        map.extend(shape);
    }
    let rest = serde_json::json!({
        "channels_last": a.memory_format.is_channels_last(device),
        "precision": a.precision,
        "loader": a.loader,
        "forward_only": a.forward_only,
        "steps": a.steps,
        "median_ms": median(whole),
        "mean_ms": mean,
        "min_ms": min,
        "forward_ms": median(forward),
        "backward_ms": median(backward),
        "wait_ms": median(wait),
        "allreduce_ms": median(reduce),
        "optimizer_ms": median(update),
        "peak_rss_mb": peak_rss_mb(),
    });
    if let (Some(map), serde_json::Value::Object(rest)) = (line.as_object_mut(), rest) {
        map.extend(rest);
    }
    outln!("{line}");
    Ok(())
}

#[derive(Args)]
pub struct BlocksArgs {
    /// The space whose supernet is timed.
    #[arg(long, default_value = "nb201", value_parser = parse_space)]
    space: SpaceName,
    /// Timed forward and backward passes per block.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Untimed passes first (allocator and kernel warm-up).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch_size: i64,
    /// Channels C of the blocks (the supernets' first stage).
    #[arg(long, default_value_t = 16)]
    channels: i64,
    /// CPU threads for libtorch (0 = its default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// auto, cpu or cuda.
    #[arg(long, value_parser = crate::parse_named::<DeviceChoice>, default_value = "auto")]
    device: DeviceChoice,
    /// Memory layout: auto (channels-last on the CPU), channels_last or contiguous.
    #[arg(long, value_parser = crate::parse_named::<MemoryFormat>, default_value = "auto")]
    memory_format: MemoryFormat,
}

fn blocks(a: &BlocksArgs) -> Result<()> {
    if a.threads > 0 {
        tch::set_num_threads(a.threads as i32);
    }
    let device = a.device.resolve()?;
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let blocks = registry::space(a.space).bench_blocks(&vs.root(), a.channels, a.batch_size);
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
