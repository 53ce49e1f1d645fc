//! `agnas latency-table`: measure a latency lookup table of the macro space on this machine and check it against
//! whole networks.
use agnas::space::proxyless::latency::{self, MeasureConfig};
use agnas::space::proxyless::LatencySpec;
use agnas::space::SpaceName;
use agnas::train::{DeviceChoice, MemoryFormat};
use anyhow::{ensure, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct LatencyTableArgs {
    /// Search space (only proxyless has a table).
    #[arg(long, value_parser = crate::parse_space)]
    space: SpaceName,
    /// auto, cpu or cuda: where the latencies are measured.
    #[arg(long, value_parser = crate::parse_named::<DeviceChoice>, default_value = "auto")]
    device: DeviceChoice,
    /// Input side in pixels.
    #[arg(long, alias = "input", default_value_t = 224)]
    image_size: i64,
    /// Channel multiplier of the network.
    #[arg(long, default_value_t = 1.0)]
    width_mult: f64,
    /// Classes of the classifier.
    #[arg(long, default_value_t = 1000)]
    num_classes: i64,
    /// Images per timed forward (1: the latency of one image, as the field tables it).
    #[arg(long, default_value_t = 1)]
    batch_size: i64,
    /// CPU threads for libtorch (0 = its default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Timed forwards per entry (and per checked network).
    #[arg(long, default_value_t = 50)]
    repeats: usize,
    /// Untimed forwards before them.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Also write the JSON here (it always goes to stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Random architectures whose whole retrain network is timed (in the same rounds as the entries) against the
    /// table's sum (0 = none).
    #[arg(long, default_value_t = 5)]
    check: usize,
    /// Seed of those architectures.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// auto (channels-last on the CPU), channels_last or contiguous; the same for the entries and the check.
    #[arg(long, value_parser = crate::parse_named::<MemoryFormat>, default_value = "auto")]
    memory_format: MemoryFormat,
}

pub fn run(a: &LatencyTableArgs) -> Result<()> {
    ensure!(
        a.space == SpaceName::Proxyless,
        "latency-table: only the proxyless space has a latency table (got {})",
        a.space
    );
    if a.threads > 0 {
        tch::set_num_threads(a.threads as i32);
    }
    let device = a.device.resolve()?;
    let spec = LatencySpec { width_mult: a.width_mult, image_size: a.image_size, num_classes: a.num_classes };
    let cfg = MeasureConfig {
        spec,
        device,
        batch_size: a.batch_size,
        warmup: a.warmup,
        repeats: a.repeats,
        channels_last: a.memory_format.is_channels_last(device),
    };
    cfg.validate()?;
    tch::manual_seed(0);
    let archs = latency::random_archs(a.check, a.seed);
    let start = Instant::now();
    let table = latency::measure(&cfg, &archs, a.seed)?;
    let pre: f64 = table.fixed.pre.iter().map(|k| table.lut[k].mean).sum();
    let post: f64 = table.fixed.post.iter().map(|k| table.lut[k].mean).sum();
    eprintln!(
        "latency table: {} entries on {} ({} threads), batch {}, {} px, width {}, {} repeats after {} warm-up, {:.1} s",
        table.lut.len(),
        table.device,
        table.threads,
        a.batch_size,
        a.image_size,
        a.width_mult,
        a.repeats,
        a.warmup,
        start.elapsed().as_secs_f64()
    );
    eprintln!("  PreProcessing {pre:.3} ms, PostProcessing {post:.3} ms (the identity costs 0)");
    if let Some(check) = &table.check {
        eprintln!(
            "check: {} random architectures (seed {}) timed in the same rounds, table sum against the whole network:",
            check.archs.len(),
            check.seed
        );
        eprintln!("  {:<50} {:>12} {:>12} {:>8}", "arch", "predicted ms", "measured ms", "error");
        for c in &check.archs {
            eprintln!(
                "  {:<50} {:>12.3} {:>12.3} {:>7.1}%",
                c.arch.to_string(),
                c.predicted_ms,
                c.measured_ms,
                100.0 * c.relative_error
            );
        }
        eprintln!("  mean |relative error| {:.1} %", 100.0 * check.mean_abs_relative_error);
    }
    if let Some(path) = &a.out {
        table.save(path)?;
        eprintln!("wrote {}", path.display());
    }
    outln!("{}", serde_json::to_string_pretty(&table)?);
    Ok(())
}
