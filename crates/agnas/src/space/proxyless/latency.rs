//! Latency lookup tables of the macro space for one device: the measured forward time of every (layer, MBConv)
//! shape and of the fixed parts, under once-for-all's `ProxylessNASLatencyTable` keys, so that an architecture's
//! latency is predicted as a sum (what budgeted selection needs) without building it.
//!
//! Keys (OFA's layer types; shapes are height×width×channels of one image):
//! - `Conv-input:224x224x3-output:112x112x40`: the stem 3×3 conv, BN, ReLU6 (part of `PreProcessing`);
//! - `expanded_conv-input:112x112x40-output:112x112x24-expand:1-kernel:3-stride:1-idskip:0`: the fixed
//!   expansion-1 block (the rest of `PreProcessing`), and with expand 3 or 6 every searchable MBConv; `idskip` is 1
//!   where the block adds its input (stride 1, as many channels out as in);
//! - `Conv_1-input:7x7x432-output:7x7x1728`: the head 1×1 conv, BN, ReLU6 (OFA's `feature_mix_layer`);
//! - `Logits-input:7x7x1728-output:1000`: everything after it (global average pooling, flatten, classifier; the
//!   dropout does nothing in eval mode). `Conv_1` and `Logits` are `PostProcessing`.
//!
//! The identity (id −1) costs 0 ms and has no entry. Identical shapes (layers 1–3 at width 1, …) share one key.
use super::arch::{self, Arch, LayerShape, MbConvKind, LAYERS, MBCONVS};
use super::blocks::{ConvBnRelu6, ConvInit, MbConv};
use super::network::{ProxylessNetwork, ProxylessNetworkConfig};
use super::supernet::validate_width;
use crate::error::{bail, ensure, Context, Result};
use crate::nn::init::linear;
use crate::train::settings::{to_channels_last, vars_to_channels_last};
use indexmap::IndexMap;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use tch::nn::{self, ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// What `format` says in the files this module writes.
pub const FORMAT: &str = "agnas-latency-table/1";
/// What the `identity` field says.
pub const IDENTITY_NOTE: &str = "the identity (id -1) costs 0 ms and has no entry";

/// Input channels of the stem (RGB images, as OFA's keys assume).
const IMAGE_CHANNELS: i64 = 3;

/// `HxWxC` of a square feature map, as OFA's `repr_shape`.
fn hwc(size: i64, channels: i64) -> String {
    format!("{size}x{size}x{channels}")
}

/// One timed unit of the network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part {
    /// Stem conv 3×3 stride 2, BN, ReLU6 (`Conv`).
    Stem { image_size: i64, channels: i64 },
    /// An inverted residual block (`expanded_conv`): the fixed expansion-1 block or a searchable MBConv.
    Block { shape: LayerShape, kind: MbConvKind },
    /// Head 1×1 conv, BN, ReLU6 (`Conv_1`).
    HeadConv { size: i64, inp: i64, oup: i64 },
    /// Global average pooling, flatten and classifier (`Logits`).
    Logits { size: i64, features: i64, classes: i64 },
}

impl Part {
    /// The table key, in once-for-all's format.
    pub fn key(&self) -> String {
        match *self {
            Part::Stem { image_size, channels } => format!(
                "Conv-input:{}-output:{}",
                hwc(image_size, IMAGE_CHANNELS),
                hwc(arch::conv_out(image_size, 2), channels)
            ),
            Part::Block { shape, kind } => format!(
                "expanded_conv-input:{}-output:{}-expand:{}-kernel:{}-stride:{}-idskip:{}",
                hwc(shape.size, shape.inp),
                hwc(shape.out_size(), shape.oup),
                kind.expand,
                kind.kernel,
                shape.stride,
                u8::from(shape.skippable())
            ),
            Part::HeadConv { size, inp, oup } => format!("Conv_1-input:{}-output:{}", hwc(size, inp), hwc(size, oup)),
            Part::Logits { size, features, classes } => {
                format!("Logits-input:{}-output:{classes}", hwc(size, features))
            }
        }
    }

    /// The input of one forward, NCHW.
    pub fn input_shape(&self, batch: i64) -> [i64; 4] {
        match *self {
            Part::Stem { image_size, .. } => [batch, IMAGE_CHANNELS, image_size, image_size],
            Part::Block { shape, .. } => [batch, shape.inp, shape.size, shape.size],
            Part::HeadConv { size, inp, .. } => [batch, inp, size, size],
            Part::Logits { size, features, .. } => [batch, features, size, size],
        }
    }

    /// The part's modules under `p` (PyTorch's default initialisation, as the retrain network) and its eval-mode
    /// forward.
    pub fn build(&self, p: &nn::Path) -> Box<dyn Fn(&Tensor) -> Tensor> {
        let init = ConvInit::PyTorch;
        match *self {
            Part::Stem { channels, .. } => {
                let m = ConvBnRelu6::new(p / "conv", IMAGE_CHANNELS, channels, 3, 2, init);
                Box::new(move |x| m.forward_t(x, false))
            }
            Part::Block { shape, kind } => {
                let m = MbConv::new(p / "block", shape.inp, shape.oup, kind, shape.stride, init);
                Box::new(move |x| m.forward_t(x, false))
            }
            Part::HeadConv { inp, oup, .. } => {
                let m = ConvBnRelu6::new(p / "conv", inp, oup, 1, 1, init);
                Box::new(move |x| m.forward_t(x, false))
            }
            Part::Logits { features, classes, .. } => {
                let m = linear(p / "classifier", features, classes, true);
                Box::new(move |x| x.adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(&m))
            }
        }
    }
}

/// The network a table is for: width, input side and classes (the keys depend on nothing else).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySpec {
    pub width_mult: f64,
    pub image_size: i64,
    pub num_classes: i64,
}

impl LatencySpec {
    pub fn validate(&self) -> Result<()> {
        validate_width(self.width_mult, "--width-mult")?;
        ensure!(self.image_size >= 8, "the input side must be at least 8 pixels (got {})", self.image_size);
        ensure!(self.num_classes >= 1, "the number of classes must be at least 1 (got {})", self.num_classes);
        Ok(())
    }

    pub fn shapes(&self) -> Vec<LayerShape> {
        arch::layer_shapes(self.width_mult, self.image_size)
    }

    /// Stem and the fixed expansion-1 block: the table's `PreProcessing`.
    pub fn pre_processing(&self) -> Vec<Part> {
        let stem_out = arch::conv_out(self.image_size, 2);
        let c0 = arch::scaled(arch::STEM_CHANNELS, self.width_mult);
        let first = LayerShape {
            inp: c0,
            oup: arch::scaled(arch::FIRST_BLOCK_CHANNELS, self.width_mult),
            stride: 1,
            size: stem_out,
        };
        vec![
            Part::Stem { image_size: self.image_size, channels: c0 },
            Part::Block { shape: first, kind: MbConvKind { kernel: 3, expand: 1 } },
        ]
    }

    /// Head conv, pooling and classifier: the table's `PostProcessing`.
    pub fn post_processing(&self) -> Vec<Part> {
        let last = self.shapes()[LAYERS - 1];
        let (size, head) = (last.out_size(), arch::head_channels(self.width_mult));
        vec![
            Part::HeadConv { size, inp: last.oup, oup: head },
            Part::Logits { size, features: head, classes: self.num_classes },
        ]
    }

    /// The six MBConvs of every layer, in candidate order.
    pub fn layers(&self) -> Vec<[Part; MBCONVS]> {
        self.shapes()
            .into_iter()
            .map(|shape| std::array::from_fn(|k| Part::Block { shape, kind: MbConvKind::of(k) }))
            .collect()
    }

    /// Every distinct part once, by key, in network order.
    pub fn parts(&self) -> IndexMap<String, Part> {
        let layers = self.layers().into_iter().flatten();
        let all = self.pre_processing().into_iter().chain(layers).chain(self.post_processing());
        let mut parts = IndexMap::new();
        for part in all {
            parts.entry(part.key()).or_insert(part);
        }
        parts
    }
}

/// Measured forward milliseconds of one key.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyEntry {
    pub mean: f64,
    /// Population standard deviation (divisor n).
    pub std: f64,
    pub count: usize,
}

impl LatencyEntry {
    pub fn of(times: &[f64]) -> Self {
        let n = times.len().max(1) as f64;
        let mean = times.iter().sum::<f64>() / n;
        let var = times.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n;
        LatencyEntry { mean, std: var.sqrt(), count: times.len() }
    }
}

/// The keys of the fixed parts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FixedKeys {
    #[serde(rename = "PreProcessing")]
    pub pre: Vec<String>,
    #[serde(rename = "PostProcessing")]
    pub post: Vec<String>,
}

/// One architecture of `--check`: the table's sum against the whole network timed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedArch {
    pub arch: Arch,
    pub predicted_ms: f64,
    pub measured_ms: f64,
    pub measured_std_ms: f64,
    pub count: usize,
    /// (predicted − measured) / measured.
    pub relative_error: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Seed of the random architectures.
    pub seed: u64,
    pub archs: Vec<CheckedArch>,
    pub mean_abs_relative_error: f64,
}

/// A latency lookup table: where and how it was measured, and the entries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LatencyTable {
    pub format: String,
    pub space: String,
    pub unit: String,
    /// `cpu` or `cuda:<i>`.
    pub device: String,
    /// The CPU's model name (`/proc/cpuinfo`), where known.
    pub processor: Option<String>,
    /// libtorch's intra-op threads.
    pub threads: i64,
    /// The libtorch agnas was built against (the torch wheel's version), where the build saw it.
    pub libtorch: Option<String>,
    pub tch: String,
    pub batch_size: i64,
    /// Input side in pixels.
    pub input: i64,
    pub width_mult: f64,
    pub num_classes: i64,
    /// Weights and inputs channels-last (agnas's default on the CPU).
    pub channels_last: bool,
    pub warmup: usize,
    pub repeats: usize,
    /// UTC date of the measurement.
    pub date: String,
    pub identity: String,
    pub fixed: FixedKeys,
    /// Labels of the candidates in the order of `layers`' rows.
    pub candidates: Vec<String>,
    /// Each layer's six keys (the identity has none).
    pub layers: Vec<Vec<String>>,
    pub lut: IndexMap<String, LatencyEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// Where the table was read from (for error messages).
    #[serde(skip)]
    pub source: String,
}

/// What an architecture costs under a table, as [`super::cost::CostModel`] for FLOPs.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyCosts {
    /// `PreProcessing` + `PostProcessing`, ms.
    pub fixed: f64,
    /// Each layer's six MBConvs, ms; the identity costs 0.
    pub layers: Vec<[f64; MBCONVS]>,
}

impl LatencyCosts {
    /// The cost of candidate slot `slot` (6 = identity) at layer `l`.
    pub fn candidate(&self, l: usize, slot: usize) -> f64 {
        self.layers[l].get(slot).copied().unwrap_or(0.0)
    }

    pub fn arch(&self, arch: &Arch) -> f64 {
        self.fixed + arch.slots().iter().enumerate().map(|(l, &s)| self.candidate(l, s)).sum::<f64>()
    }
}

impl LatencyTable {
    /// Reads a table written by `agnas latency-table` (or by hand: only `lut` is required).
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading latency table {}", path.display()))?;
        let mut table: LatencyTable =
            serde_json::from_str(&text).with_context(|| format!("parsing latency table {}", path.display()))?;
        table.source = path.display().to_string();
        ensure!(
            table.format.is_empty() || table.format == FORMAT,
            "latency table {}: format `{}`, this agnas reads `{FORMAT}`",
            table.source,
            table.format
        );
        ensure!(
            table.space.is_empty() || table.space == "proxyless",
            "latency table {}: made for space `{}`, not proxyless",
            table.source,
            table.space
        );
        ensure!(!table.lut.is_empty(), "latency table {} has no entries (`lut` is missing or empty)", table.source);
        if let Some((key, e)) = table.lut.iter().find(|(_, e)| !(e.mean.is_finite() && e.mean >= 0.0)) {
            bail!("latency table {}: entry `{key}` has mean {} ms (must be finite and ≥ 0)", table.source, e.mean);
        }
        Ok(table)
    }

    /// Writes the table as pretty JSON (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        crate::report::atomic_write(path, text.as_bytes())
            .with_context(|| format!("writing latency table {}", path.display()))
    }

    fn name(&self) -> &str {
        if self.source.is_empty() {
            "(in memory)"
        } else {
            &self.source
        }
    }

    /// The mean of `key`; `what` says which part of the network it prices.
    pub fn mean(&self, key: &str, what: &str) -> Result<f64> {
        match self.lut.get(key) {
            Some(e) => Ok(e.mean),
            None => bail!(
                "latency table {} has no entry `{key}` ({what}); it was measured for width {}, input {} px, {} \
                 classes: rebuild it with `agnas latency-table --space proxyless --width-mult W --input S` at the \
                 search's width and input",
                self.name(),
                self.width_mult,
                self.input,
                self.num_classes
            ),
        }
    }

    /// Milliseconds of each layer's six MBConvs at `shapes` (the identity, slot 6, costs 0 and is not listed).
    pub fn costs(&self, shapes: &[LayerShape]) -> Result<Vec<[f64; MBCONVS]>> {
        shapes
            .iter()
            .enumerate()
            .map(|(l, &shape)| {
                let mut row = [0.0; MBCONVS];
                for (k, ms) in row.iter_mut().enumerate() {
                    let kind = MbConvKind::of(k);
                    *ms = self.mean(&Part::Block { shape, kind }.key(), &format!("layer {l}, {}", kind.label()))?;
                }
                Ok(row)
            })
            .collect()
    }

    /// Milliseconds of what every architecture runs besides its 21 layers (`PreProcessing` + `PostProcessing`).
    pub fn fixed(&self, spec: &LatencySpec) -> Result<f64> {
        let pre = spec.pre_processing().iter().map(|p| self.mean(&p.key(), "PreProcessing")).sum::<Result<f64>>()?;
        let post = spec.post_processing().iter().map(|p| self.mean(&p.key(), "PostProcessing")).sum::<Result<f64>>()?;
        Ok(pre + post)
    }

    /// Fixed and per-candidate costs of the network `spec` describes.
    pub fn model(&self, spec: &LatencySpec) -> Result<LatencyCosts> {
        Ok(LatencyCosts { fixed: self.fixed(spec)?, layers: self.costs(&spec.shapes())? })
    }
}

/// How to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasureConfig {
    pub spec: LatencySpec,
    pub device: Device,
    pub batch_size: i64,
    pub warmup: usize,
    pub repeats: usize,
    pub channels_last: bool,
}

impl MeasureConfig {
    pub fn validate(&self) -> Result<()> {
        self.spec.validate()?;
        ensure!(self.batch_size >= 1, "the batch size must be at least 1");
        ensure!(self.repeats >= 1, "--repeats must be at least 1");
        Ok(())
    }

    fn input(&self, shape: [i64; 4]) -> Tensor {
        let x = Tensor::randn(shape, (Kind::Float, self.device));
        if self.channels_last {
            to_channels_last(&x)
        } else {
            x
        }
    }

    fn var_store(&self) -> VarStore {
        VarStore::new(self.device)
    }

    fn layout(&self, vs: &VarStore) {
        if self.channels_last {
            vars_to_channels_last(vs);
        }
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// A forward to time, on its own input.
pub type Forward<'a> = Box<dyn Fn() -> Tensor + 'a>;

/// Times every forward `repeats` times after `warmup` untimed calls, without autograd. The calls go round-robin (one
/// call of each forward per round), as a network runs its blocks one after the other: each starts with the caches
/// the previous one left, and a slow spell of the machine spreads over all entries instead of spoiling a few. Every
/// call sits between two device synchronisations.
pub fn time_round_robin(device: Device, warmup: usize, repeats: usize, forwards: &[Forward]) -> Vec<LatencyEntry> {
    tch::no_grad(|| {
        for _ in 0..warmup {
            for forward in forwards {
                drop(forward());
            }
        }
        sync(device);
        let mut times = vec![Vec::with_capacity(repeats); forwards.len()];
        for _ in 0..repeats {
            for (forward, times) in forwards.iter().zip(&mut times) {
                let t = Instant::now();
                let y = forward();
                sync(device);
                times.push(t.elapsed().as_secs_f64() * 1e3);
                drop(y);
            }
        }
        times.iter().map(|t| LatencyEntry::of(t)).collect()
    })
}

/// `YYYY-MM-DD` of now, UTC.
fn today() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Days to civil date (proleptic Gregorian), H. Hinnant's algorithm.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn describe_device(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
        Device::Cpu => "cpu".into(),
    }
}

fn processor() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

/// Times every distinct part of `cfg.spec`, each in its own modules (eval mode, PyTorch's initialisation) on a random
/// input, round-robin (see [`time_round_robin`]). With `check` architectures, their whole retrain networks (eval
/// mode) are timed in the same rounds, so that a change of the machine's load during the run affects the entries and
/// the networks alike, and the table's sum for each is compared with its measured forward (`check`).
pub fn measure(cfg: &MeasureConfig, check: &[Arch], seed: u64) -> Result<LatencyTable> {
    cfg.validate()?;
    let parts = cfg.spec.parts();
    let vs = cfg.var_store();
    // One random input per input shape (the six candidates of a layer read the same one).
    let mut inputs = std::collections::HashMap::new();
    let mut input = |shape: [i64; 4]| inputs.entry(shape).or_insert_with(|| cfg.input(shape)).shallow_clone();
    let mut forwards: Vec<Forward> = parts
        .values()
        .enumerate()
        .map(|(i, part)| {
            let forward = part.build(&(vs.root() / "parts" / i));
            let x = input(part.input_shape(cfg.batch_size));
            Box::new(move || forward(&x)) as Forward
        })
        .collect();
    let net_cfg = ProxylessNetworkConfig { width_mult: cfg.spec.width_mult, dropout: 0.0 };
    let side = cfg.spec.image_size;
    for (i, arch) in check.iter().enumerate() {
        let net =
            ProxylessNetwork::new(&(vs.root() / "check" / i), &net_cfg, arch, IMAGE_CHANNELS, cfg.spec.num_classes);
        let x = input([cfg.batch_size, IMAGE_CHANNELS, side, side]);
        forwards.push(Box::new(move || net.forward_t(&x, false)));
    }
    cfg.layout(&vs);
    let mut entries = time_round_robin(cfg.device, cfg.warmup, cfg.repeats, &forwards);
    let networks = entries.split_off(parts.len());
    let lut: IndexMap<String, LatencyEntry> = parts.keys().cloned().zip(entries).collect();
    let keys = |parts: Vec<Part>| parts.iter().map(Part::key).collect();
    let mut table = LatencyTable {
        format: FORMAT.into(),
        space: "proxyless".into(),
        unit: "ms".into(),
        device: describe_device(cfg.device),
        processor: processor(),
        threads: i64::from(tch::get_num_threads()),
        libtorch: option_env!("AGNAS_LIBTORCH_VERSION").map(String::from),
        tch: "0.24".into(),
        batch_size: cfg.batch_size,
        input: cfg.spec.image_size,
        width_mult: cfg.spec.width_mult,
        num_classes: cfg.spec.num_classes,
        channels_last: cfg.channels_last,
        warmup: cfg.warmup,
        repeats: cfg.repeats,
        date: today(),
        identity: IDENTITY_NOTE.into(),
        fixed: FixedKeys { pre: keys(cfg.spec.pre_processing()), post: keys(cfg.spec.post_processing()) },
        candidates: (0..MBCONVS).map(arch::candidate_label).collect(),
        layers: cfg.spec.layers().iter().map(|row| row.iter().map(Part::key).collect()).collect(),
        lut,
        check: None,
        source: String::new(),
    };
    if !check.is_empty() {
        table.check = Some(compare(&table, &cfg.spec, check, &networks, seed)?);
    }
    Ok(table)
}

/// `n` architectures drawn uniformly per layer from the candidates it has (the identity only where it may skip).
pub fn random_archs(n: usize, seed: u64) -> Vec<Arch> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let slots: Vec<usize> =
                (0..LAYERS).map(|l| rng.gen_range(0..MBCONVS + usize::from(arch::skippable(l)))).collect();
            Arch::from_slots(&slots).expect("only skippable layers draw the identity")
        })
        .collect()
}

/// Each architecture's prediction by `table` against its measured forward.
fn compare(
    table: &LatencyTable,
    spec: &LatencySpec,
    archs: &[Arch],
    measured: &[LatencyEntry],
    seed: u64,
) -> Result<Check> {
    let costs = table.model(spec)?;
    let checked: Vec<CheckedArch> = archs
        .iter()
        .zip(measured)
        .map(|(arch, m)| {
            let predicted = costs.arch(arch);
            CheckedArch {
                arch: *arch,
                predicted_ms: predicted,
                measured_ms: m.mean,
                measured_std_ms: m.std,
                count: m.count,
                relative_error: (predicted - m.mean) / m.mean,
            }
        })
        .collect();
    let mean_abs_relative_error =
        checked.iter().map(|c| c.relative_error.abs()).sum::<f64>() / checked.len().max(1) as f64;
    Ok(Check { seed, archs: checked, mean_abs_relative_error })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(width_mult: f64, image_size: i64) -> LatencySpec {
        LatencySpec { width_mult, image_size, num_classes: 1000 }
    }

    /// Keys written out by hand in once-for-all's format for the width-1.0, 224 px network.
    #[test]
    fn keys_are_once_for_alls() {
        let s = spec(1.0, 224);
        let pre: Vec<String> = s.pre_processing().iter().map(Part::key).collect();
        assert_eq!(
            pre,
            [
                "Conv-input:224x224x3-output:112x112x40",
                "expanded_conv-input:112x112x40-output:112x112x24-expand:1-kernel:3-stride:1-idskip:0",
            ]
        );
        let post: Vec<String> = s.post_processing().iter().map(Part::key).collect();
        assert_eq!(post, ["Conv_1-input:7x7x432-output:7x7x1728", "Logits-input:7x7x1728-output:1000"]);
        let layers = s.layers();
        assert_eq!(
            layers[0][5].key(),
            "expanded_conv-input:112x112x24-output:56x56x32-expand:6-kernel:7-stride:2-idskip:0"
        );
        assert_eq!(
            layers[1][2].key(),
            "expanded_conv-input:56x56x32-output:56x56x32-expand:3-kernel:5-stride:1-idskip:1"
        );
        assert_eq!(
            layers[12][1].key(),
            "expanded_conv-input:14x14x112-output:14x14x128-expand:6-kernel:3-stride:1-idskip:0"
        );
        assert_eq!(
            layers[20][0].key(),
            "expanded_conv-input:7x7x256-output:7x7x432-expand:3-kernel:3-stride:1-idskip:0"
        );
        // Odd sides round up as a "same" stride-2 convolution does (OFA: (size + 1) // 2).
        assert_eq!(spec(0.25, 65).pre_processing()[0].key(), "Conv-input:65x65x3-output:33x33x10");
        // 11 distinct layer shapes at width 1 (layers 1–3 share one, …), six MBConvs each, and the four fixed parts.
        assert_eq!(s.parts().len(), 11 * 6 + 4);
    }

    fn small_table() -> LatencyTable {
        let s = spec(0.25, 64);
        let lut = s.parts().keys().enumerate().map(|(i, k)| (k.clone(), LatencyEntry::of(&[i as f64, 1.0]))).collect();
        LatencyTable {
            format: FORMAT.into(),
            space: "proxyless".into(),
            width_mult: 0.25,
            input: 64,
            num_classes: 1000,
            fixed: FixedKeys {
                pre: s.pre_processing().iter().map(Part::key).collect(),
                post: s.post_processing().iter().map(Part::key).collect(),
            },
            lut,
            ..LatencyTable::default()
        }
    }

    #[test]
    fn tables_round_trip_and_price_architectures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.json");
        let table = small_table();
        table.save(&path).unwrap();
        let loaded = LatencyTable::load(&path).unwrap();
        assert_eq!(loaded.source, path.display().to_string());
        assert_eq!(LatencyTable { source: String::new(), ..loaded.clone() }, table);
        let s = spec(0.25, 64);
        let costs = loaded.model(&s).unwrap();
        let mean = |p: &Part| table.lut[&p.key()].mean;
        let fixed: f64 = s.pre_processing().iter().chain(&s.post_processing()).map(mean).sum();
        assert_eq!(costs.fixed, fixed);
        let arch = Arch::parse(arch::AGNAS).unwrap();
        let layers = s.layers();
        let blocks: f64 = arch.0.iter().zip(&layers).filter_map(|(c, row)| c.map(|id| mean(&row[id as usize]))).sum();
        assert_eq!(costs.arch(&arch), fixed + blocks);
        assert_eq!(costs.candidate(1, MBCONVS), 0.0, "the identity");
        assert_eq!(loaded.costs(&s.shapes()).unwrap(), costs.layers);
    }

    #[test]
    fn loader_errors_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.json");
        let err = LatencyTable::load(&path).unwrap_err();
        assert!(err.report().contains("reading latency table") && err.report().contains("table.json"));

        std::fs::write(&path, "{\"lut\": {\"k\": {\"mean\": 1.0}}}").unwrap();
        let err = LatencyTable::load(&path).unwrap_err().report();
        assert!(err.contains("parsing latency table") && err.contains("std"), "{err}");

        std::fs::write(&path, "{\"space\": \"proxyless\"}").unwrap();
        let err = LatencyTable::load(&path).unwrap_err().report();
        assert!(err.contains("no entries"), "{err}");

        // A table of another width: the first key the search needs is named, with the fix.
        small_table().save(&path).unwrap();
        let table = LatencyTable::load(&path).unwrap();
        let err = table.model(&spec(0.5, 64)).unwrap_err().to_string();
        let key = spec(0.5, 64).pre_processing()[0].key();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(&format!("`{key}`")) && err.contains("PreProcessing"), "{err}");
        assert!(err.contains("width 0.25, input 64 px") && err.contains("--width-mult"), "{err}");
        let err = table.costs(&spec(0.25, 96).shapes()).unwrap_err().to_string();
        assert!(err.contains("layer 0, k3e3") && err.contains("input:48x48x6"), "{err}");

        // One entry short.
        let mut short = small_table();
        let missing = spec(0.25, 64).layers()[20][3].key();
        short.lut.shift_remove(&missing);
        short.save(&path).unwrap();
        let err = LatencyTable::load(&path).unwrap().model(&spec(0.25, 64)).unwrap_err().to_string();
        assert!(err.contains(&missing) && err.contains("layer 20, k5e6"), "{err}");
    }

    #[test]
    fn random_architectures_are_valid_and_seeded() {
        let a = random_archs(20, 3);
        assert_eq!(a, random_archs(20, 3));
        assert_ne!(a, random_archs(20, 4));
        assert!(a.iter().all(|arch| arch.validate().is_ok()));
        assert!(a.iter().any(|arch| arch.0.contains(&None)), "the identity is drawn");
    }

    #[test]
    fn dates_are_civil() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert!(d.as_str() >= "2024-01-01", "{d}");
    }
}
