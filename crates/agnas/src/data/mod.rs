//! Image data sets: readers for the usual on-disk formats, the embedded CIFAR-10 subset, splits,
//! augmentation and a deterministic multi-threaded batch loader.
pub mod augment;
pub mod cifar;
mod color;
pub mod embedded;
pub mod folder;
pub mod idx;
pub mod loader;
mod resample;

use crate::error::{bail, ensure, Context, Result};
use augment::CenterView;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file format of `data.path`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "kebab-case")]
pub enum DataFormat {
    /// Guessed from what is at the path.
    #[default]
    Auto,
    /// CIFAR-10 binary batches (`cifar-10-batches-bin`).
    Cifar10,
    /// CIFAR-100 binary (`cifar-100-binary`).
    Cifar100,
    /// Class folders of JPEG/PNG images, or a .tar/.tar.gz of them.
    Folder,
    /// IDX files (MNIST, Fashion-MNIST).
    Idx,
}

/// The data a search runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Training images; absent = the CIFAR-10 subset embedded in agnas.
    pub path: Option<PathBuf>,
    pub format: DataFormat,
    /// Use only this many training images per class (balanced, seeded); 0 = all.
    pub per_class: usize,
    /// Share of the training images that trains weights and attention; the rest is the held-out half. Not used
    /// with `heldout_path`.
    pub split: f64,
    /// Held-out images of their own (the official code's `val/` folder of its ImageNet subset; a retrain's
    /// validation images) instead of a split of the training images, which then all train. Read in `format`: for
    /// CIFAR and IDX files, their test split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heldout_path: Option<PathBuf>,
    /// Images that are not random-resized-cropped (held-out, validation, test, and training images without
    /// `train.augment.random_resized_crop`) are first resized to this shorter side, aspect ratio kept (0 = not).
    pub resize: usize,
    /// ... then cut to this centred square (0 = not).
    pub crop: usize,
    /// Background threads decoding and augmenting batches.
    pub workers: usize,
    /// Batches prepared ahead of the training step.
    pub prefetch: usize,
    /// Per-channel mean and std of `Normalize` (`[data.normalization]`); absent = the usual constants for CIFAR,
    /// else the statistics of the training images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalization: Option<Normalization>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            path: None,
            format: DataFormat::Auto,
            per_class: 0,
            split: 0.5,
            heldout_path: None,
            resize: 0,
            crop: 0,
            workers: 2,
            prefetch: 4,
            normalization: None,
        }
    }
}

impl DataConfig {
    /// The geometry of images that are not random-resized-cropped.
    pub fn view(&self) -> CenterView {
        CenterView { resize: self.resize, crop: self.crop }
    }

    /// Rejects impossible values, naming the field (the range of `split` is the run's to check).
    pub fn validate(&self) -> Result<()> {
        ensure!(self.workers > 0, "data.workers must be at least 1");
        ensure!(self.prefetch > 0, "data.prefetch must be at least 1");
        if let Some(n) = &self.normalization {
            ensure!(
                !n.mean.is_empty() && n.mean.len() == n.std.len(),
                "data.normalization needs one mean and one std per channel (got {} and {})",
                n.mean.len(),
                n.std.len()
            );
            ensure!(
                n.mean.iter().all(|m| m.is_finite()) && n.std.iter().all(|s| s.is_finite() && *s > 0.0),
                "data.normalization: means must be finite and stds positive (got {:?}, {:?})",
                n.mean,
                n.std
            );
        }
        self.view().validate()
    }
}

/// One image, rows × columns × channels, u8 (HWC).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// Labelled images addressed by index; shared by the loader's threads.
pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn num_classes(&self) -> usize;
    fn class_names(&self) -> &[String];
    /// Label of image `i`; `i` must be below `len()`.
    fn label(&self, i: usize) -> i64;
    /// Image `i` written into `out`, reusing its buffer, so that the loader's threads do not allocate per sample.
    fn image_into(&self, i: usize, out: &mut Image) -> Result<()>;
    fn image(&self, i: usize) -> Result<Image> {
        let mut out = Image::default();
        self.image_into(i, &mut out)?;
        Ok(out)
    }
    /// Short name ("cifar10", a folder name, ...) that errors and normalisation presets refer to.
    fn name(&self) -> &str {
        "dataset"
    }
    /// Image `i` as errors name it: its file where it has one.
    fn describe(&self, i: usize) -> String {
        format!("{}: image {i}", self.name())
    }
    /// The decoded images when the whole set is in memory, for exact statistics.
    fn in_memory(&self) -> Option<&ImageSet> {
        None
    }
}

/// Which half of a data set that ships a training and a test part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Decoded images of one size in a single buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    name: String,
    height: usize,
    width: usize,
    channels: usize,
    pixels: Vec<u8>,
    labels: Vec<i64>,
    class_names: Vec<String>,
}

impl ImageSet {
    /// `pixels` holds `labels.len()` HWC images back to back; every label must be a valid class index.
    pub fn new(
        name: impl Into<String>,
        (height, width, channels): (usize, usize, usize),
        pixels: Vec<u8>,
        labels: Vec<i64>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let name = name.into();
        let per_image = height * width * channels;
        ensure!(per_image > 0, "{name}: images of {height}×{width}×{channels} hold no pixels");
        ensure!(
            pixels.len() == per_image * labels.len(),
            "{name}: {} pixel bytes do not make {} images of {height}×{width}×{channels}",
            pixels.len(),
            labels.len()
        );
        let classes = class_names.len() as i64;
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l < 0 || l >= classes) {
            bail!("{name}: image {i} has label {l}, outside the {classes} classes");
        }
        Ok(ImageSet { name, height, width, channels, pixels, labels, class_names })
    }

    /// (height, width, channels) of every image.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.height, self.width, self.channels)
    }

    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// HWC bytes of image `i`.
    pub fn image_bytes(&self, i: usize) -> Result<&[u8]> {
        let n = self.height * self.width * self.channels;
        self.pixels
            .get(i * n..(i + 1) * n)
            .with_context(|| format!("{}: image {i} requested, but the set has {}", self.name, self.labels.len()))
    }
}

impl Dataset for ImageSet {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn num_classes(&self) -> usize {
        self.class_names.len()
    }
    fn class_names(&self) -> &[String] {
        &self.class_names
    }
    fn label(&self, i: usize) -> i64 {
        self.labels[i]
    }
    fn image_into(&self, i: usize, out: &mut Image) -> Result<()> {
        let bytes = self.image_bytes(i)?;
        out.height = self.height;
        out.width = self.width;
        out.channels = self.channels;
        out.data.clear();
        out.data.extend_from_slice(bytes);
        Ok(())
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn in_memory(&self) -> Option<&ImageSet> {
        Some(self)
    }
}

/// Per-channel statistics of the pixel values scaled to [0, 1]: x ↦ (x/255 − mean) / std.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

pub const CIFAR10_MEAN: [f32; 3] = [0.491_399_68, 0.482_158_27, 0.446_531_24];
pub const CIFAR10_STD: [f32; 3] = [0.247_032_33, 0.243_485_05, 0.261_587_68];
pub const CIFAR100_MEAN: [f32; 3] = [0.5071, 0.4867, 0.4408];
pub const CIFAR100_STD: [f32; 3] = [0.2675, 0.2565, 0.2761];
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Images a lazily decoded set contributes to its estimated statistics: enough for three decimals.
const ESTIMATE_SAMPLES: usize = 2000;

impl Normalization {
    pub fn cifar10() -> Self {
        Normalization { mean: CIFAR10_MEAN.to_vec(), std: CIFAR10_STD.to_vec() }
    }

    pub fn cifar100() -> Self {
        Normalization { mean: CIFAR100_MEAN.to_vec(), std: CIFAR100_STD.to_vec() }
    }

    pub fn imagenet() -> Self {
        Normalization { mean: IMAGENET_MEAN.to_vec(), std: IMAGENET_STD.to_vec() }
    }

    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Exact mean and (population) standard deviation of every channel over the whole set.
    pub fn from_image_set(set: &ImageSet) -> Self {
        let mut acc = Moments::new(set.channels);
        acc.add(set.pixels());
        acc.finish()
    }

    /// Statistics over at most `max_images` images spread evenly over the set.
    pub fn estimate(set: &dyn Dataset, max_images: usize) -> Result<Self> {
        ensure!(!set.is_empty() && max_images > 0, "{}: no images to compute the normalisation from", set.name());
        let take = max_images.min(set.len());
        let mut image = Image::default();
        set.image_into(0, &mut image)?;
        let mut acc = Moments::new(image.channels);
        for k in 0..take {
            let i = k * set.len() / take;
            set.image_into(i, &mut image)?;
            ensure!(
                image.channels == acc.sum.len(),
                "{}: image {i} has {} channels, image 0 has {}",
                set.name(),
                image.channels,
                acc.sum.len()
            );
            acc.add(&image.data);
        }
        Ok(acc.finish())
    }

    /// The usual constants for CIFAR, else the statistics of the set itself (sampled when it is not in memory).
    /// A set that cannot be read falls back to mean 0.5 / std 0.5; the loader then reports the unreadable image.
    pub fn for_dataset(set: &dyn Dataset) -> Self {
        match set.name() {
            cifar::CIFAR10_NAME | embedded::SUBSET_NAME => return Normalization::cifar10(),
            cifar::CIFAR100_NAME => return Normalization::cifar100(),
            _ => {}
        }
        if let Some(images) = set.in_memory() {
            return Normalization::from_image_set(images);
        }
        Normalization::estimate(set, ESTIMATE_SAMPLES).unwrap_or_else(|e| {
            tracing::warn!(
                "cannot compute the normalisation of {}: {}; using mean 0.5, std 0.5",
                set.name(),
                e.report()
            );
            Normalization { mean: vec![0.5; 3], std: vec![0.5; 3] }
        })
    }
}

/// Running per-channel sums of interleaved u8 pixels.
struct Moments {
    sum: Vec<u64>,
    sum_sq: Vec<u64>,
    count: u64,
}

impl Moments {
    fn new(channels: usize) -> Self {
        Moments { sum: vec![0; channels], sum_sq: vec![0; channels], count: 0 }
    }

    fn add(&mut self, hwc: &[u8]) {
        let c = self.sum.len();
        for px in hwc.chunks_exact(c) {
            for (k, &v) in px.iter().enumerate() {
                self.sum[k] += u64::from(v);
                self.sum_sq[k] += u64::from(v) * u64::from(v);
            }
        }
        self.count += (hwc.len() / c) as u64;
    }

    fn finish(self) -> Normalization {
        let n = self.count.max(1) as f64;
        let mut mean = Vec::with_capacity(self.sum.len());
        let mut std = Vec::with_capacity(self.sum.len());
        for (&s, &sq) in self.sum.iter().zip(&self.sum_sq) {
            let m = s as f64 / n;
            let var = (sq as f64 / n - m * m).max(0.0);
            mean.push((m / 255.0) as f32);
            // A constant channel would divide by zero; leaving it unscaled keeps the values finite.
            let sd = var.sqrt() / 255.0;
            std.push(if sd > 1e-8 { sd as f32 } else { 1.0 });
        }
        Normalization { mean, std }
    }
}

/// Independent random streams, so that e.g. the split does not change when the augmentation draws more numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Order = 1,
    Augment = 2,
    Split = 3,
    Subset = 4,
}

/// A ChaCha generator keyed by the seed, two coordinates (epoch, image, class ...) and the stream.
pub(crate) fn rng_for(seed: u64, a: u64, b: u64, stream: Stream) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, v) in key.chunks_exact_mut(8).zip([seed, a, b, stream as u64]) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// Indices of each class, classes in ascending order, indices ascending.
fn by_class(labels: &[i64]) -> BTreeMap<i64, Vec<usize>> {
    let mut classes: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        classes.entry(l).or_default().push(i);
    }
    classes
}

/// Splits the indices of `labels` in two: a seeded shuffle of each class puts `round(fraction·n_c)` of class c into
/// the first part and the rest into the second. Both parts come back sorted.
pub fn stratified_split(labels: &[i64], fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    ensure!(fraction > 0.0 && fraction < 1.0, "split fraction must be strictly between 0 and 1 (got {fraction})");
    let mut first = Vec::new();
    let mut second = Vec::new();
    for (class, mut members) in by_class(labels) {
        let mut rng = rng_for(seed, class as u64, 0, Stream::Split);
        members.shuffle(&mut rng);
        let k = (fraction * members.len() as f64).round() as usize;
        first.extend_from_slice(&members[..k]);
        second.extend_from_slice(&members[k..]);
    }
    ensure!(
        !first.is_empty() && !second.is_empty(),
        "splitting {} images with fraction {fraction} leaves one part empty",
        labels.len()
    );
    first.sort_unstable();
    second.sort_unstable();
    Ok((first, second))
}

/// A balanced subset: `per_class` indices of every class, chosen by a seeded shuffle, sorted.
pub fn subset_per_class(labels: &[i64], per_class: usize, seed: u64) -> Result<Vec<usize>> {
    ensure!(per_class > 0, "per_class must be at least 1");
    ensure!(!labels.is_empty(), "cannot take a subset of an empty data set");
    let mut chosen = Vec::new();
    for (class, mut members) in by_class(labels) {
        ensure!(
            members.len() >= per_class,
            "class {class} has {} images, fewer than the {per_class} per class asked for",
            members.len()
        );
        let mut rng = rng_for(seed, class as u64, 0, Stream::Subset);
        members.shuffle(&mut rng);
        chosen.extend_from_slice(&members[..per_class]);
    }
    chosen.sort_unstable();
    Ok(chosen)
}

/// The images a run trains on and the ones it holds out (the held-out half of a search, the validation split of a
/// retrain), each with the data set its indices point into.
pub struct Parts {
    pub train: Arc<dyn Dataset>,
    pub train_idx: Vec<usize>,
    /// `train` itself unless `data.heldout_path` names a source of its own.
    pub other: Arc<dyn Dataset>,
    pub other_idx: Vec<usize>,
}

/// Opens the training images and takes an optional balanced subset of `per_class` per class. The held-out part is
/// every image of `heldout_path` when it is set, else a stratified `1 − split` share of the training images
/// (`split = 1`: none).
pub fn open_parts(config: &DataConfig, seed: u64) -> Result<Parts> {
    let train = open(config.path.as_deref(), config.format)?;
    let labels: Vec<i64> = (0..train.len()).map(|i| train.label(i)).collect();
    let pool: Vec<usize> = if config.per_class > 0 {
        subset_per_class(&labels, config.per_class, seed)?
    } else {
        (0..labels.len()).collect()
    };
    if let Some(path) = &config.heldout_path {
        let other = open_split(Some(path), config.format, Split::Test)?;
        ensure!(
            other.class_names() == train.class_names(),
            "the held-out images {} have the classes {:?}, the training images {:?}",
            path.display(),
            other.class_names(),
            train.class_names()
        );
        let other_idx = (0..other.len()).collect();
        return Ok(Parts { train, train_idx: pool, other, other_idx });
    }
    if config.split >= 1.0 {
        return Ok(Parts { other: train.clone(), train, train_idx: pool, other_idx: Vec::new() });
    }
    let pool_labels: Vec<i64> = pool.iter().map(|&i| labels[i]).collect();
    let (a, b) = stratified_split(&pool_labels, config.split, seed)?;
    let train_idx = a.into_iter().map(|i| pool[i]).collect();
    let other_idx = b.into_iter().map(|i| pool[i]).collect();
    Ok(Parts { other: train.clone(), train, train_idx, other_idx })
}

/// Opens the training images at `path` (the embedded CIFAR-10 subset when `None`), guessing the format when asked to.
pub fn open(path: Option<&Path>, format: DataFormat) -> Result<Arc<dyn Dataset>> {
    open_split(path, format, Split::Train)
}

/// Opens one split: the training or test batches of CIFAR and IDX files, the `train/` or `test/`/`val/` folder of a
/// folder that has them (any other folder is taken as it is); the embedded subset has only training images. Says
/// which images it opened.
pub fn open_split(path: Option<&Path>, format: DataFormat, split: Split) -> Result<Arc<dyn Dataset>> {
    let set = open_images(path, format, split)?;
    let shown = path.map_or("the embedded CIFAR-10 subset".into(), |p| p.display().to_string());
    let part = match split {
        Split::Train => "training",
        Split::Test => "test",
    };
    tracing::info!("{shown}, {part} images: {} of {} classes", set.len(), set.num_classes());
    Ok(set)
}

fn open_images(path: Option<&Path>, format: DataFormat, split: Split) -> Result<Arc<dyn Dataset>> {
    let Some(path) = path else {
        ensure!(
            matches!(format, DataFormat::Auto),
            "data.format = {format:?} needs data.path (without a path the embedded CIFAR-10 subset is used)"
        );
        ensure!(split == Split::Train, "the embedded CIFAR-10 subset has no test split: give a data path");
        return Ok(Arc::new(embedded::cifar10_subset()?));
    };
    if !path.exists() {
        return Err(crate::Error::Data { path: path.to_path_buf(), message: "the data path does not exist".into() });
    }
    let format = match format {
        DataFormat::Auto => guess_format(path),
        f => f,
    };
    Ok(match format {
        DataFormat::Cifar10 => Arc::new(cifar::load_cifar10(path, split)?),
        DataFormat::Cifar100 => Arc::new(cifar::load_cifar100(path, split)?),
        DataFormat::Idx => Arc::new(idx::load_idx(path, split)?),
        DataFormat::Folder | DataFormat::Auto if folder::is_archive(path) => Arc::new(folder::load_in_memory(path)?),
        DataFormat::Folder | DataFormat::Auto => folder::open_folder(&folder::split_folder(path, split)?)?,
    })
}

fn guess_format(path: &Path) -> DataFormat {
    if cifar::locate(path, cifar::CIFAR10_DIR, "data_batch_1.bin").is_some() {
        DataFormat::Cifar10
    } else if cifar::locate(path, cifar::CIFAR100_DIR, "train.bin").is_some() {
        DataFormat::Cifar100
    } else if idx::find(path, "train-images-idx3-ubyte").is_some() {
        DataFormat::Idx
    } else {
        DataFormat::Folder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_set() -> ImageSet {
        // 2×1 RGB images; channel 0 is constant, channel 1 alternates 0/255, channel 2 counts.
        let labels = vec![0, 1, 1, 0];
        let mut pixels = Vec::new();
        for i in 0..4u8 {
            pixels.extend_from_slice(&[51, 0, i, 51, 255, i + 4]);
        }
        ImageSet::new("toy", (2, 1, 3), pixels, labels, vec!["a".into(), "b".into()]).unwrap()
    }

    #[test]
    fn image_set_checks_and_accessors() {
        let set = toy_set();
        assert_eq!(set.len(), 4);
        assert_eq!(set.image(2).unwrap().data, vec![51, 0, 2, 51, 255, 6]);
        assert!(set.image(4).unwrap_err().report().contains("toy"));
        let bad = ImageSet::new("bad", (1, 1, 1), vec![0, 0], vec![0, 2], vec!["x".into(), "y".into()]);
        assert!(bad.unwrap_err().report().contains("image 1 has label 2"));
        assert!(ImageSet::new("short", (1, 1, 3), vec![0; 5], vec![0, 0], vec!["x".into()]).is_err());
    }

    #[test]
    fn normalization_statistics() {
        let set = toy_set();
        let n = Normalization::from_image_set(&set);
        assert!((n.mean[0] - 0.2).abs() < 1e-6 && n.std[0] == 1.0, "constant channel: {n:?}");
        assert!((n.mean[1] - 0.5).abs() < 1e-6 && (n.std[1] - 0.5).abs() < 1e-6, "{n:?}");
        // Channel 2 holds 0..8 once each: mean 3.5, population variance 5.25.
        assert!((n.mean[2] - 3.5 / 255.0).abs() < 1e-7);
        assert!((n.std[2] - 5.25f32.sqrt() / 255.0).abs() < 1e-7);
        assert_eq!(Normalization::estimate(&set, 100).unwrap(), n);
        assert_eq!(Normalization::for_dataset(&set), n);
        assert_eq!(Normalization::cifar10().mean, CIFAR10_MEAN.to_vec());
        assert_eq!(Normalization::cifar100().std, CIFAR100_STD.to_vec());
    }

    #[test]
    fn stratified_split_is_proportional_disjoint_and_seeded() {
        let labels: Vec<i64> = (0..1000).map(|i| [0, 1, 1, 2, 2, 2, 2, 2, 2, 2][i % 10]).collect();
        let (a, b) = stratified_split(&labels, 0.3, 7).unwrap();
        assert_eq!(a.len() + b.len(), labels.len());
        let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), labels.len(), "the parts overlap or lose indices");
        for (class, total) in [(0, 100), (1, 200), (2, 700)] {
            let in_a = a.iter().filter(|&&i| labels[i] == class).count();
            assert_eq!(in_a, (0.3f64 * total as f64).round() as usize, "class {class}");
        }
        assert_eq!(stratified_split(&labels, 0.3, 7).unwrap(), (a.clone(), b));
        assert_ne!(stratified_split(&labels, 0.3, 8).unwrap().0, a);
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(stratified_split(&labels, bad, 0).is_err(), "fraction {bad}");
        }
        assert!(stratified_split(&[0, 0, 0], 0.1, 0).is_err(), "rounds to an empty first part");
    }

    #[test]
    fn open_guesses_the_format() {
        let embedded = open(None, DataFormat::Auto).unwrap();
        assert_eq!((embedded.name(), embedded.len()), (embedded::SUBSET_NAME, 10_000));
        assert_eq!(Normalization::for_dataset(embedded.as_ref()), Normalization::cifar10());
        assert!(format!("{}", open(None, DataFormat::Cifar100).err().unwrap()).contains("data.path"));

        let dir = tempfile::tempdir().unwrap();
        let c10 = dir.path().join("c10").join(cifar::CIFAR10_DIR);
        std::fs::create_dir_all(&c10).unwrap();
        for b in 1..=5 {
            std::fs::write(c10.join(format!("data_batch_{b}.bin")), [vec![b as u8], vec![7; 3072]].concat()).unwrap();
        }
        let set = open(Some(&dir.path().join("c10")), DataFormat::Auto).unwrap();
        assert_eq!((set.name(), set.len(), set.label(4)), (cifar::CIFAR10_NAME, 5, 5));
        assert_eq!(Normalization::for_dataset(set.as_ref()), Normalization::cifar10());

        let idx_dir = dir.path().join("digits");
        std::fs::create_dir(&idx_dir).unwrap();
        std::fs::write(idx_dir.join("train-images-idx3-ubyte"), [0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 9, 9])
            .unwrap();
        std::fs::write(idx_dir.join("train-labels-idx1-ubyte"), [0, 0, 8, 1, 0, 0, 0, 1, 4]).unwrap();
        let set = open(Some(&idx_dir), DataFormat::Auto).unwrap();
        assert_eq!((set.name(), set.len(), set.num_classes()), ("digits", 1, 5));
        assert!(open(Some(&idx_dir), DataFormat::Cifar10).is_err(), "an explicit format is not second-guessed");

        let classes = dir.path().join("shapes");
        for (class, value) in [("round", 10u8), ("square", 200)] {
            std::fs::create_dir_all(classes.join(class)).unwrap();
            image::GrayImage::from_pixel(2, 2, image::Luma([value])).save(classes.join(class).join("1.png")).unwrap();
        }
        let set = open(Some(&classes), DataFormat::Auto).unwrap();
        assert_eq!((set.name(), set.len(), set.label(1)), ("shapes", 2, 1));
        let norm = Normalization::for_dataset(set.as_ref());
        assert!((norm.mean[0] - 105.0 / 255.0).abs() < 1e-6, "statistics of the set itself: {norm:?}");
        assert!(open(Some(&dir.path().join("missing")), DataFormat::Auto).is_err());
    }

    fn class_folders(root: &Path, classes: &[&str], per_class: usize) {
        for class in classes {
            std::fs::create_dir_all(root.join(class)).unwrap();
            for k in 0..per_class {
                let img = image::RgbImage::from_pixel(3 + k as u32, 2, image::Rgb([k as u8 * 40, 9, 200]));
                img.save(root.join(class).join(format!("{k}.png"))).unwrap();
            }
        }
    }

    #[test]
    fn a_heldout_folder_replaces_the_split() {
        let dir = tempfile::tempdir().unwrap();
        let (train, val) = (dir.path().join("train"), dir.path().join("val"));
        class_folders(&train, &["a", "b", "c"], 4);
        class_folders(&val, &["a", "b", "c"], 2);
        let config = DataConfig { path: Some(train.clone()), per_class: 3, ..DataConfig::default() };

        let split = open_parts(&config, 1).unwrap();
        assert!(Arc::ptr_eq(&split.train, &split.other), "without heldout_path both parts index the training images");
        assert_eq!(split.train_idx.len() + split.other_idx.len(), 9);

        let held = DataConfig { heldout_path: Some(val.clone()), ..config.clone() };
        let parts = open_parts(&held, 1).unwrap();
        assert_eq!(parts.train_idx.len(), 9, "every image of the per-class subset trains");
        assert_eq!((parts.other.len(), parts.other_idx.clone()), (6, (0..6).collect()));
        assert_eq!(parts.other.describe(5), val.join("c/1.png").display().to_string());
        assert_eq!(parts.other.image(1).unwrap().width, 4, "the held-out folder's own images");

        class_folders(&dir.path().join("other"), &["a", "b", "d"], 1);
        let wrong = DataConfig { heldout_path: Some(dir.path().join("other")), ..config };
        let err = open_parts(&wrong, 1).err().unwrap().report();
        assert!(err.contains("other") && err.contains("\"d\""), "{err}");
    }

    #[test]
    fn subset_per_class_is_balanced() {
        let labels: Vec<i64> = (0..300).map(|i| (i % 3) as i64).collect();
        let s = subset_per_class(&labels, 40, 1).unwrap();
        assert_eq!(s.len(), 120);
        for c in 0..3 {
            assert_eq!(s.iter().filter(|&&i| labels[i] == c).count(), 40);
        }
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(subset_per_class(&labels, 40, 1).unwrap(), s);
        assert_ne!(subset_per_class(&labels, 40, 2).unwrap(), s);
        assert!(format!("{}", subset_per_class(&labels, 101, 1).unwrap_err()).contains("class 0"));
    }
}
