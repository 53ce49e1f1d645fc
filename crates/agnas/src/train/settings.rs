//! The settings every training run shares: where it runs, the memory layout, and how it optimises.
use crate::data::augment::Augment;
use crate::error::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Tensor};

/// Where the tensors live.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DeviceChoice {
    /// CUDA when a GPU is visible, else the CPU.
    #[default]
    Auto,
    Cpu,
    #[strum(serialize = "cuda", serialize = "gpu")]
    Cuda,
}

impl DeviceChoice {
    pub fn resolve(self) -> Result<tch::Device> {
        match self {
            DeviceChoice::Auto => Ok(tch::Device::cuda_if_available()),
            DeviceChoice::Cpu => Ok(tch::Device::Cpu),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
            DeviceChoice::Cuda => bail!("device = \"cuda\" but no CUDA device is visible"),
        }
    }
}

/// Memory layout of activations and convolution weights. Activations follow the weights: libtorch gives a
/// convolution with channels-last weights a channels-last output, and every later op keeps the layout.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MemoryFormat {
    /// Channels-last on the CPU, where libtorch's convolutions, BN and pools are faster on it (BENCHMARKS.md);
    /// contiguous on CUDA, where it has not been measured.
    #[default]
    Auto,
    #[strum(serialize = "channels_last", serialize = "channels-last", serialize = "nhwc")]
    ChannelsLast,
    #[strum(serialize = "contiguous", serialize = "nchw")]
    Contiguous,
}

impl MemoryFormat {
    pub fn is_channels_last(self, device: tch::Device) -> bool {
        match self {
            MemoryFormat::Auto => device == tch::Device::Cpu,
            MemoryFormat::ChannelsLast => true,
            MemoryFormat::Contiguous => false,
        }
    }

    /// Puts the 4-D variables (convolution weights) of `vs` into this layout.
    pub fn apply(self, vs: &tch::nn::VarStore) {
        if self.is_channels_last(vs.device()) {
            vars_to_channels_last(vs);
        }
    }
}

/// The type a run computes its activations in (`--precision`), with the semantics of PyTorch's automatic mixed
/// precision: the weights, the optimizer's state, the checkpoints, the losses and the attention's gates and
/// importance sums stay fp32, so that a run resumes under another precision. Convolutions and batch norms take and
/// give the low type, and so do the fused gated sums, so that the maps stay in it from op to op; the sums inside
/// them are taken in fp32.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Precision {
    #[default]
    #[strum(to_string = "fp32", serialize = "float32")]
    Fp32,
    #[strum(to_string = "bf16", serialize = "bfloat16")]
    Bf16,
    #[strum(to_string = "fp16", serialize = "float16", serialize = "half")]
    Fp16,
}

impl Precision {
    /// The activations' type.
    pub fn kind(self) -> tch::Kind {
        match self {
            Precision::Fp32 => tch::Kind::Float,
            Precision::Bf16 => tch::Kind::BFloat16,
            Precision::Fp16 => tch::Kind::Half,
        }
    }

    /// Rejects what this build cannot run on `device`.
    pub fn check(self, device: tch::Device) -> Result<()> {
        ensure!(
            self != Precision::Fp16,
            "precision = \"fp16\" needs CUDA with dynamic loss scaling, which agnas has not run on a GPU yet{}: use \
             bf16 (the same range as fp32, so no loss scaling)",
            if device.is_cuda() { "" } else { " (and this run is on the CPU)" }
        );
        Ok(())
    }
}

/// The threads a run takes when none are given: the cores that are not busy now. libtorch's OpenMP threads spin
/// while they wait for each other, so a thread on a core that another process holds stalls every parallel region
/// (BENCHMARKS.md: the NB201 step 1.15 s idle with 2 threads, 8–11 s beside one busy process, 2.2 s with 1 thread).
/// Processes at a positive nice level yield the core and do not count; `OMP_NUM_THREADS` (set by launchers for
/// their ranks) is left to libtorch.
pub fn default_threads() -> Option<usize> {
    if std::env::var_os("OMP_NUM_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let busy = busy_cores(cores, std::time::Duration::from_millis(200))?;
    Some(cores.saturating_sub(busy.round() as usize).clamp(1, cores))
}

/// How many cores other processes keep busy (not counting niced ones), from two samples of /proc/stat.
fn busy_cores(cores: usize, over: std::time::Duration) -> Option<f64> {
    let sample = || std::fs::read_to_string("/proc/stat").ok();
    let before = sample()?;
    std::thread::sleep(over);
    busy_between(&before, &sample()?, cores)
}

/// The busy cores between two readings of /proc/stat: of its first line's jiffies (user nice system idle iowait irq
/// softirq steal), all but nice, idle and iowait.
fn busy_between(before: &str, after: &str, cores: usize) -> Option<f64> {
    let jiffies = |stat: &str| -> Option<(u64, u64)> {
        let fields: Vec<u64> =
            stat.lines().next()?.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
        let total: u64 = fields.iter().take(8).sum();
        let free = fields.get(1)? + fields.get(3)? + fields.get(4)?;
        Some((total, total - free))
    };
    let ((total0, busy0), (total1, busy1)) = (jiffies(before)?, jiffies(after)?);
    let elapsed = total1.checked_sub(total0).filter(|&t| t > 0)? as f64;
    Some(cores as f64 * busy1.saturating_sub(busy0) as f64 / elapsed)
}

/// The same values with channels-last strides (NHWC in memory, NCHW in shape): libtorch's CPU convolutions,
/// BN and pools run much faster on it for the narrow layers of cell supernets. tch has no memory-format
/// argument, so the layout is made by permuting to NHWC, compacting, and permuting the view back.
pub fn to_channels_last(xs: &Tensor) -> Tensor {
    if xs.dim() != 4 {
        return xs.shallow_clone();
    }
    xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Puts every 4-D variable (conv weights) of `vs` into channels-last layout, in place.
pub fn vars_to_channels_last(vs: &VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                v.set_data(&to_channels_last(&v));
            }
        }
    });
}

/// Which parameters weight decay applies to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DecayRule {
    #[default]
    All,
    /// 4-D (convolution) weights only: BN, attention and classifier are not decayed (the macro retrain).
    ConvWeights,
    /// 4-D weights and the parameters of `classifier.*` (the macro search; its attention Linears and BN get none).
    ConvWeightsAndClassifier,
}

impl DecayRule {
    pub fn decays(self, name: &str, param: &Tensor) -> bool {
        match self {
            DecayRule::All => true,
            DecayRule::ConvWeights => param.dim() == 4,
            DecayRule::ConvWeightsAndClassifier => param.dim() == 4 || name.starts_with("classifier."),
        }
    }
}

/// How gradients are clipped to `grad_clip`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ClipBy {
    /// Scale all gradients so that their global L2 norm is at most the bound (`clip_grad_norm_`).
    #[default]
    Norm,
    /// Clamp every gradient element to ±bound (`clip_grad_value_`).
    Value,
}

/// The learning-rate schedule.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ScheduleKind {
    /// Cosine annealing, one value per epoch.
    #[default]
    Cosine,
    /// Linear decay per iteration, floored at `lr_min`.
    Linear,
}

/// Weights-and-attention training on the training half.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Images per step over all ranks: the global batch, for which the learning rate is set.
    pub batch_size: usize,
    /// Forward-backward passes per step and rank, on equal parts of its images, with gradients summed before the
    /// update: batch-norm statistics are per micro-batch, so one process with `micro_batches` M trains as M ranks
    /// would (up to summation order), in 1/M of the memory.
    pub micro_batches: usize,
    pub lr: f64,
    pub lr_min: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// Which parameters weight decay applies to.
    pub weight_decay_on: DecayRule,
    /// The bound gradients are clipped to (0 = no clipping), as a global L2 norm or element by element.
    pub grad_clip: f64,
    pub grad_clip_by: ClipBy,
    /// How the LR goes from `lr` to `lr_min`.
    pub schedule: ScheduleKind,
    /// Reproduce the official codes' order, the scheduler stepped before the update: with the per-epoch cosine,
    /// epoch e runs at lr(e+1); with the per-step linear schedule, step t runs at lr(t+1).
    pub lr_step_at_epoch_start: bool,
    /// ε of label-smoothing cross-entropy (0 = plain cross-entropy).
    pub label_smoothing: f64,
    pub augment: Augment,
    /// Steps between mid-epoch checkpoints (0 = only at the end of each epoch).
    pub checkpoint_every: usize,
    /// Steps between host reads of the loss (NaN check, progress).
    pub sync_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 50,
            batch_size: 64,
            micro_batches: 1,
            lr: 0.025,
            lr_min: 0.001,
            momentum: 0.9,
            weight_decay: 3e-4,
            nesterov: false,
            weight_decay_on: DecayRule::All,
            grad_clip: 5.0,
            grad_clip_by: ClipBy::Norm,
            schedule: ScheduleKind::Cosine,
            lr_step_at_epoch_start: false,
            label_smoothing: 0.0,
            augment: Augment { crop_padding: 4, hflip: true, cutout: 0, ..Augment::none() },
            checkpoint_every: 200,
            sync_every: 10,
        }
    }
}

impl TrainConfig {
    /// Rejects impossible optimisation settings, naming the field (shared by search and retrain).
    pub fn validate(&self) -> Result<()> {
        let t = self;
        ensure!(t.epochs > 0, "train.epochs must be at least 1");
        ensure!(t.batch_size > 0, "train.batch_size must be at least 1");
        ensure!(t.micro_batches > 0, "train.micro_batches must be at least 1");
        ensure!(t.lr.is_finite() && t.lr > 0.0, "train.lr must be a positive number (got {})", t.lr);
        ensure!(
            t.lr_min.is_finite() && (0.0..=t.lr).contains(&t.lr_min),
            "train.lr_min must be in [0, train.lr] (got {})",
            t.lr_min
        );
        ensure!((0.0..1.0).contains(&t.momentum), "train.momentum must be in [0, 1) (got {})", t.momentum);
        ensure!(t.weight_decay >= 0.0, "train.weight_decay must be >= 0 (got {})", t.weight_decay);
        ensure!(t.grad_clip >= 0.0, "train.grad_clip must be >= 0 (got {})", t.grad_clip);
        ensure!(t.sync_every > 0, "train.sync_every must be at least 1");
        ensure!(
            (0.0..1.0).contains(&t.label_smoothing),
            "train.label_smoothing must be in [0, 1) (got {})",
            t.label_smoothing
        );
        t.augment.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One core of two busy in user and system time reads as one; niced work and idle time do not count; an
    /// unreadable line gives nothing.
    #[test]
    fn busy_cores_leave_out_niced_and_idle_time() {
        let before = "cpu  100 50 20 1000 5 0 0 0 0 0\ncpu0 ...";
        // 200 jiffies on 2 cores: 80 user + 20 system busy, 60 nice, 40 idle.
        let after = "cpu  180 110 40 1040 5 0 0 0 0 0\n";
        assert_eq!(busy_between(before, after, 2), Some(1.0));
        assert_eq!(busy_between(before, "intr 1 2\n", 2), None);
        assert_eq!(busy_between(before, before, 2), None);
        let threads = default_threads();
        let cores = std::thread::available_parallelism().unwrap().get();
        assert!(threads.is_none_or(|t| (1..=cores).contains(&t)), "{threads:?} of {cores}");
    }

    #[test]
    fn memory_format_resolves_per_device_and_rejects_unknown_values() {
        assert!(MemoryFormat::Auto.is_channels_last(tch::Device::Cpu));
        assert!(!MemoryFormat::Auto.is_channels_last(tch::Device::Cuda(0)));
        assert!(MemoryFormat::ChannelsLast.is_channels_last(tch::Device::Cuda(0)));
        assert!(!MemoryFormat::Contiguous.is_channels_last(tch::Device::Cpu));
        assert_eq!("nhwc".parse::<MemoryFormat>().unwrap(), MemoryFormat::ChannelsLast);
        assert!("nhcw".parse::<MemoryFormat>().is_err());
        assert_eq!("gpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda);
    }

    #[test]
    fn channels_last_weights_give_channels_last_activations() {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let conv = tch::nn::conv2d(vs.root() / "c", 3, 8, 3, tch::nn::ConvConfig { padding: 1, ..Default::default() });
        MemoryFormat::ChannelsLast.apply(&vs);
        let y = tch::Tensor::randn([2, 3, 8, 8], (tch::Kind::Float, tch::Device::Cpu)).apply(&conv);
        // Channels-last strides: C fastest, then W, then H.
        assert_eq!(y.stride(), [8 * 8 * 8, 1, 8 * 8, 8], "an NCHW input through channels-last weights");
    }
}
