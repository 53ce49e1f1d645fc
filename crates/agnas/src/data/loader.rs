//! Batches of augmented, normalised images, prepared ahead on background threads.
//!
//! Everything random is a function of (seed, epoch) for the order and (seed, epoch, image index) for the
//! augmentation, so a batch does not depend on the number of workers or on the batch an epoch was resumed at.
//! Images are read (and, for sets decoded on demand, decoded) in the worker threads; at most
//! max(`prefetch`, `workers`) batches are prepared ahead of the consumer.
use super::augment::Transform;
use super::{rng_for, Dataset, Image, Normalization, Stream};
use crate::error::{ensure, Context, Result};
use crossbeam_channel::{Receiver, Sender};
use rand::seq::SliceRandom;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use tch::Tensor;

#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    /// Visit the indices in a new seeded order every epoch, instead of as given.
    pub shuffle: bool,
    /// Leave out the last batch when it would be smaller than `batch_size`.
    pub drop_last: bool,
    /// Decides the size of the batch's images: without a random resized crop or a centre crop, every image of a
    /// batch must come out at one size.
    pub transform: Transform,
    pub normalization: Normalization,
    /// Background threads decoding and augmenting (at least one is used).
    pub workers: usize,
    /// Batches prepared ahead of the consumer (at least one per worker, so that none idles).
    pub prefetch: usize,
    pub seed: u64,
    /// This rank's part of every batch, when several processes train together.
    pub shard: Shard,
}

/// A rank's part of each batch: `batch_size` is the global batch, and its images are split among the ranks into
/// contiguous parts in rank order, so that what the ranks see together is what one process would see, whatever the
/// number of ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world: usize,
    /// Training: a short last batch is padded with the epoch's first images (as PyTorch's `DistributedSampler`
    /// pads) to a multiple of this many equal parts (ranks × micro-batches, a multiple of `world` that divides
    /// `batch_size`), so that the mean of the parts' mean losses is the batch's. `None` (evaluation): the ranks' parts differ by at most one image and
    /// may be empty, as sums, not means, are combined.
    pub pad: Option<usize>,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { rank: 0, world: 1, pad: None }
    }
}

impl Shard {
    /// The positions (into the epoch's order) of this rank's images of batch `k` of `batch_size`, over `n` images.
    fn positions(&self, k: usize, batch_size: usize, n: usize) -> std::ops::Range<usize> {
        let start = k * batch_size;
        let m = batch_size.min(n - start);
        match self.pad {
            Some(parts) if parts > 1 => {
                let per = m.div_ceil(parts) * (parts / self.world);
                start + self.rank * per..start + (self.rank + 1) * per
            }
            _ if self.world <= 1 => start..start + m,
            _ => start + self.rank * m / self.world..start + (self.rank + 1) * m / self.world,
        }
    }
}

/// Images as (B, C, H, W) f32 on the CPU, contiguous; labels as (B,) i64; the data set indices they came from.
#[derive(Debug)]
pub struct Batch {
    pub x: Tensor,
    pub y: Tensor,
    pub indices: Vec<usize>,
}

/// Batches over a fixed list of indices into a data set.
pub struct Loader {
    dataset: Arc<dyn Dataset>,
    indices: Vec<usize>,
    config: LoaderConfig,
}

impl Loader {
    pub fn new(dataset: Arc<dyn Dataset>, indices: Vec<usize>, config: LoaderConfig) -> Self {
        Loader { dataset, indices, config }
    }

    /// Batches per epoch (0 when `batch_size` is 0: `epoch` then reports the error).
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.indices.len(), self.config.batch_size);
        match b {
            0 => 0,
            _ if self.config.drop_last => n / b,
            _ => n.div_ceil(b),
        }
    }

    /// The batches of `epoch` from batch `start_batch` on, in order. A failed batch is yielded as an error and
    /// ends the epoch; dropping the iterator stops the workers.
    pub fn epoch(&self, epoch: u64, start_batch: usize) -> EpochIter {
        let end = self.num_batches();
        let mut iter = EpochIter {
            next: start_batch,
            end,
            issued: start_batch,
            jobs: None,
            results: crossbeam_channel::never(),
            ready: BTreeMap::new(),
            workers: Vec::new(),
            failure: None,
        };
        if self.config.batch_size == 0 {
            iter.failure = Some(crate::Error::Message("the loader's batch_size must be at least 1".into()));
            return iter;
        }
        if start_batch > end {
            iter.failure = Some(crate::Error::Message(format!(
                "cannot start epoch {epoch} at batch {start_batch}: it has {end} batches"
            )));
            return iter;
        }
        if start_batch == end {
            return iter;
        }
        let mut order = self.indices.clone();
        if self.config.shuffle {
            order.shuffle(&mut rng_for(self.config.seed, epoch, 0, Stream::Order));
        }
        let shared = Arc::new(Shared { dataset: Arc::clone(&self.dataset), order, config: self.config.clone(), epoch });
        let (job_tx, job_rx) = crossbeam_channel::unbounded();
        let (result_tx, result_rx) = crossbeam_channel::unbounded();
        let workers = self.config.workers.max(1).min(end - start_batch);
        for w in 0..workers {
            let (shared, jobs, results) = (Arc::clone(&shared), job_rx.clone(), result_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("agnas-data-{w}"))
                .spawn(move || work(&shared, &jobs, &results));
            match spawned {
                Ok(handle) => iter.workers.push(handle),
                Err(e) => {
                    iter.failure = Some(crate::Error::from(e).context("starting a data loader thread"));
                    break;
                }
            }
        }
        iter.jobs = Some((job_tx, job_rx));
        iter.results = result_rx;
        // Batches in flight are bounded by handing out tickets: one per batch consumed.
        iter.issue(self.config.prefetch.max(workers));
        iter
    }
}

/// What every worker of one epoch reads.
struct Shared {
    dataset: Arc<dyn Dataset>,
    order: Vec<usize>,
    config: LoaderConfig,
    epoch: u64,
}

/// A batch as plain host data. Workers make no libtorch calls: each thread that runs a parallel libtorch op gets
/// an OpenMP team of its own, whose spinning threads would compete with the training step for the cores.
struct Prepared {
    values: Vec<f32>,
    shape: [i64; 4],
    labels: Vec<i64>,
    indices: Vec<usize>,
}

impl Prepared {
    fn into_batch(self) -> Batch {
        let x = Tensor::from_slice(&self.values).view(self.shape);
        Batch { x, y: Tensor::from_slice(&self.labels), indices: self.indices }
    }
}

fn work(shared: &Shared, jobs: &Receiver<usize>, results: &Sender<(usize, Result<Prepared>)>) {
    // Reused across batches: only the batch values are allocated per batch.
    let mut image = Image::default();
    while let Ok(k) = jobs.recv() {
        let batch = catch_unwind(AssertUnwindSafe(|| shared.build(k, &mut image))).unwrap_or_else(|_| {
            Err(crate::Error::Message(format!("the data loader panicked while preparing batch {k}")))
        });
        if results.send((k, batch)).is_err() {
            return;
        }
    }
}

impl Shared {
    fn build(&self, k: usize, image: &mut Image) -> Result<Prepared> {
        let cfg = &self.config;
        let data = self.dataset.as_ref();
        let n = self.order.len();
        // Past the end (padding) the order starts again.
        let indices: Vec<usize> = cfg.shard.positions(k, cfg.batch_size, n).map(|p| self.order[p % n]).collect();
        if indices.is_empty() {
            return self.empty(k, image);
        }
        let mut labels = Vec::with_capacity(indices.len());
        let mut shape = None;
        let mut values = Vec::new();
        for &i in &indices {
            ensure!(i < data.len(), "{}: index {i} is out of range ({} images)", data.name(), data.len());
            data.image_into(i, image)?;
            let (h, w) = cfg.transform.output_size(image.height, image.width).with_context(|| data.describe(i))?;
            let this = (image.channels, h, w);
            let first = *shape.get_or_insert(this);
            ensure!(
                this == first,
                "{} is {}×{}×{} ({}×{} after the transform), but the batch's first image gives {}×{}×{}: set \
                 data.crop or train.augment.random_resized_crop so that all images come out at one size",
                data.describe(i),
                image.height,
                image.width,
                this.0,
                h,
                w,
                first.1,
                first.2,
                first.0
            );
            let start = values.len();
            values.resize(start + this.0 * h * w, 0.0);
            let mut rng = rng_for(cfg.seed, self.epoch, i as u64, Stream::Augment);
            cfg.transform
                .apply(image, &cfg.normalization, &mut rng, &mut values[start..])
                .with_context(|| data.describe(i))?;
            labels.push(data.label(i));
        }
        let (c, h, w) = shape.context("an empty batch")?;
        Ok(Prepared { values, shape: [indices.len() as i64, c as i64, h as i64, w as i64], labels, indices })
    }

    /// No image of batch `k` for this rank (a short last batch of an unpadded shard): a batch of none, shaped as the
    /// batch's first image would be.
    fn empty(&self, k: usize, image: &mut Image) -> Result<Prepared> {
        let cfg = &self.config;
        let i = self.order[k * cfg.batch_size];
        self.dataset.image_into(i, image)?;
        let (h, w) = cfg.transform.output_size(image.height, image.width).with_context(|| self.dataset.describe(i))?;
        let shape = [0, image.channels as i64, h as i64, w as i64];
        Ok(Prepared { values: Vec::new(), shape, labels: Vec::new(), indices: Vec::new() })
    }
}

/// The batches of one epoch, in order.
pub struct EpochIter {
    next: usize,
    end: usize,
    /// Batches handed to the workers so far.
    issued: usize,
    /// The ticket queue; the receiver is kept to take back unstarted tickets when stopping.
    jobs: Option<(Sender<usize>, Receiver<usize>)>,
    results: Receiver<(usize, Result<Prepared>)>,
    /// Finished batches that overtook an earlier one.
    ready: BTreeMap<usize, Result<Prepared>>,
    workers: Vec<JoinHandle<()>>,
    /// An error found before any batch was built.
    failure: Option<crate::Error>,
}

impl EpochIter {
    fn issue(&mut self, count: usize) {
        let Some((tx, _)) = &self.jobs else { return };
        for _ in 0..count {
            if self.issued >= self.end || tx.send(self.issued).is_err() {
                return;
            }
            self.issued += 1;
        }
    }

    fn stop(&mut self) {
        self.end = self.next;
        if let Some((tx, rx)) = self.jobs.take() {
            drop(tx);
            while rx.try_recv().is_ok() {}
        }
        for worker in self.workers.drain(..) {
            // A worker that panicked has already reported it as a batch error.
            let _ = worker.join();
        }
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(e) = self.failure.take() {
            self.stop();
            return Some(Err(e));
        }
        if self.next >= self.end {
            self.stop();
            return None;
        }
        let result = loop {
            if let Some(r) = self.ready.remove(&self.next) {
                break r;
            }
            match self.results.recv() {
                Ok((k, r)) => {
                    self.ready.insert(k, r);
                }
                Err(_) => {
                    break Err(crate::Error::Message(format!(
                        "the data loader's threads stopped before batch {}",
                        self.next
                    )))
                }
            }
        };
        self.next += 1;
        if result.is_ok() {
            self.issue(1);
        } else {
            self.stop();
        }
        Some(result.map(Prepared::into_batch))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end.saturating_sub(self.next) + usize::from(self.failure.is_some());
        (left, Some(left))
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::{Augment, CenterView, ColorJitter, RandomResizedCrop};
    use crate::data::ImageSet;
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tch::Kind;

    fn synthetic(n: usize) -> Arc<ImageSet> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let pixels = (0..n * 8 * 6 * 3).map(|_| rng.gen()).collect();
        let labels = (0..n).map(|i| (i % 5) as i64).collect();
        let names = (0..5).map(|c| format!("c{c}")).collect();
        Arc::new(ImageSet::new("synthetic", (8, 6, 3), pixels, labels, names).unwrap())
    }

    fn cifar_style() -> Transform {
        Transform {
            augment: Augment { crop_padding: 2, hflip: true, cutout: 4, ..Augment::none() },
            view: CenterView::default(),
        }
    }

    /// The ImageNet training transform at a small size.
    fn imagenet_style() -> Transform {
        let jitter = ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.2 };
        let augment = Augment {
            hflip: true,
            random_resized_crop: Some(RandomResizedCrop { size: 7, ..RandomResizedCrop::default() }),
            color_jitter: Some(jitter),
            ..Augment::none()
        };
        Transform { augment, view: CenterView::default() }
    }

    fn config(workers: usize, prefetch: usize) -> LoaderConfig {
        LoaderConfig {
            batch_size: 8,
            shuffle: true,
            drop_last: false,
            transform: cifar_style(),
            normalization: Normalization::cifar10(),
            workers,
            prefetch,
            seed: 3,
            shard: Shard::default(),
        }
    }

    /// Images of many sizes (10..19 × 12..23), as a folder of photographs has, made up on demand.
    struct Mixed(usize);

    impl Dataset for Mixed {
        fn len(&self) -> usize {
            self.0
        }
        fn num_classes(&self) -> usize {
            5
        }
        fn class_names(&self) -> &[String] {
            &[]
        }
        fn label(&self, i: usize) -> i64 {
            (i % 5) as i64
        }
        fn image_into(&self, i: usize, out: &mut Image) -> Result<()> {
            let (h, w) = (10 + i * 7 % 10, 12 + i * 5 % 12);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            *out = Image { height: h, width: w, channels: 3, data: (0..h * w * 3).map(|_| rng.gen()).collect() };
            Ok(())
        }
        fn name(&self) -> &str {
            "mixed"
        }
    }

    fn collect(loader: &Loader, epoch: u64, start: usize) -> Vec<Batch> {
        loader.epoch(epoch, start).map(|b| b.unwrap()).collect()
    }

    fn same(a: &[Batch], b: &[Batch]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.indices == q.indices && p.x.equal(&q.x) && p.y.equal(&q.y))
    }

    /// Batches of `data` with `transform` and 1 or 3 workers, from the start or resumed, are the same; every sample
    /// is the transform seeded by (seed, epoch, its own index), wherever it lands; `shape` is the batches' C×H×W.
    fn check_deterministic_and_resumable(data: Arc<dyn Dataset>, transform: Transform, shape: [i64; 3]) {
        let indices: Vec<usize> = (3..50).collect();
        let one = Loader::new(data.clone(), indices.clone(), LoaderConfig { transform, ..config(1, 1) });
        let three = Loader::new(data.clone(), indices.clone(), LoaderConfig { transform, ..config(3, 5) });
        assert_eq!(one.num_batches(), 6);
        let e0 = collect(&one, 0, 0);
        assert!(same(&e0, &collect(&three, 0, 0)), "1 and 3 workers disagree");
        assert!(same(&e0[2..], &collect(&three, 0, 2)), "resuming at batch 2 changes the batches");
        assert!(collect(&one, 0, 6).is_empty());

        let sizes: Vec<usize> = e0.iter().map(|b| b.indices.len()).collect();
        assert_eq!(sizes, [8, 8, 8, 8, 8, 7]);
        let mut seen: Vec<usize> = e0.iter().flat_map(|b| b.indices.clone()).collect();
        assert_ne!(seen, indices, "shuffled");
        seen.sort_unstable();
        assert_eq!(seen, indices, "every index exactly once");

        let e1 = collect(&three, 1, 0);
        assert_ne!(e0[0].indices, e1[0].indices, "epochs have different orders");

        let cfg = config(1, 1);
        let n = (shape[0] * shape[1] * shape[2]) as usize;
        for (epoch, batch) in [(0, &e0[1]), (1, &e1[4])] {
            assert_eq!(batch.x.size(), [8, shape[0], shape[1], shape[2]]);
            assert_eq!((batch.x.kind(), batch.y.kind()), (Kind::Float, Kind::Int64));
            assert!(batch.x.is_contiguous());
            for (row, &i) in batch.indices.iter().enumerate() {
                let mut expect = vec![0f32; n];
                let mut rng = rng_for(cfg.seed, epoch, i as u64, Stream::Augment);
                transform.apply(&data.image(i).unwrap(), &cfg.normalization, &mut rng, &mut expect).unwrap();
                let got = Vec::<f32>::try_from(batch.x.get(row as i64).flatten(0, -1)).unwrap();
                assert_eq!(got, expect, "epoch {epoch} index {i}");
                assert_eq!(batch.y.int64_value(&[row as i64]), data.label(i));
            }
        }
        let again = collect(&one, 1, 3);
        assert!(same(&again, &e1[3..]), "a later epoch resumed mid-way");
    }

    #[test]
    fn batches_are_deterministic_and_resumable() {
        check_deterministic_and_resumable(synthetic(50), cifar_style(), [3, 8, 6]);
    }

    #[test]
    fn mixed_sizes_come_out_at_the_transforms_size() {
        let mixed: Arc<dyn Dataset> = Arc::new(Mixed(50));
        check_deterministic_and_resumable(mixed.clone(), imagenet_style(), [3, 7, 7]);
        let eval = Transform { augment: Augment::none(), view: CenterView { resize: 11, crop: 9 } };
        check_deterministic_and_resumable(mixed.clone(), eval, [3, 9, 9]);

        // Resizing alone keeps the aspect ratio, so the sizes still differ: the error names the image.
        let resize_only = Transform { augment: Augment::none(), view: CenterView { resize: 11, crop: 0 } };
        let cfg = LoaderConfig { transform: resize_only, shuffle: false, ..config(2, 2) };
        let err = Loader::new(mixed, (0..8).collect(), cfg).epoch(0, 0).next().unwrap().unwrap_err();
        let err = err.report();
        assert!(err.contains("mixed: image 1 is 17×17×3 (11×11 after the transform)"), "{err}");
        assert!(err.contains("data.crop"), "{err}");
    }

    /// Counts the images read, to see how far ahead of the consumer the workers get.
    struct Counting(Arc<ImageSet>, AtomicUsize);

    impl Dataset for Counting {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn num_classes(&self) -> usize {
            self.0.num_classes()
        }
        fn class_names(&self) -> &[String] {
            self.0.class_names()
        }
        fn label(&self, i: usize) -> i64 {
            self.0.label(i)
        }
        fn image_into(&self, i: usize, out: &mut Image) -> Result<()> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.image_into(i, out)
        }
    }

    #[test]
    fn workers_stay_a_bounded_number_of_batches_ahead() {
        let data = Arc::new(Counting(synthetic(80), AtomicUsize::new(0)));
        let cfg = LoaderConfig { batch_size: 4, ..config(2, 3) };
        let loader = Loader::new(data.clone(), (0..80).collect(), cfg);
        let mut it = loader.epoch(0, 0);
        it.next().unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        // One batch consumed, three tickets out: at most four batches read of the twenty.
        let read = data.1.load(Ordering::SeqCst);
        assert!((12..=16).contains(&read), "{read} images read");
        assert_eq!(it.count(), 19);
        assert_eq!(data.1.load(Ordering::SeqCst), 80);
    }

    #[test]
    fn shards_split_every_batch_among_the_ranks() {
        let data = synthetic(21);
        let all: Vec<Batch> =
            Loader::new(data.clone(), (0..21).collect(), config(1, 1)).epoch(2, 0).map(|b| b.unwrap()).collect();
        for (world, pad) in [(2, Some(2)), (4, Some(4)), (2, Some(4)), (1, Some(4)), (3, None), (4, None)] {
            let parts: Vec<Vec<Batch>> = (0..world)
                .map(|rank| {
                    let cfg = LoaderConfig { shard: Shard { rank, world, pad }, ..config(2, 2) };
                    Loader::new(data.clone(), (0..21).collect(), cfg).epoch(2, 0).map(|b| b.unwrap()).collect()
                })
                .collect();
            for (k, whole) in all.iter().enumerate() {
                let joined: Vec<usize> = parts.iter().flat_map(|p| p[k].indices.clone()).collect();
                let sizes: Vec<usize> = parts.iter().map(|p| p[k].indices.len()).collect();
                let (lo, hi) = (*sizes.iter().min().unwrap(), *sizes.iter().max().unwrap());
                if pad.is_some() {
                    // The batch in rank order, then the epoch's first images as padding; every part the same size.
                    assert_eq!(lo, hi, "world {world} batch {k}: {sizes:?}");
                    assert_eq!(joined[..whole.indices.len()], whole.indices[..], "world {world} batch {k}");
                    let first: Vec<usize> =
                        all[0].indices.iter().cycle().take(joined.len() - whole.indices.len()).copied().collect();
                    assert_eq!(joined[whole.indices.len()..], first[..], "padding, world {world} batch {k}");
                } else {
                    assert_eq!(joined, whole.indices, "world {world} batch {k}: no overlap, nothing left out");
                    assert!(hi - lo <= 1, "balanced parts: {sizes:?}");
                }
                // Every image is the one-process image: its transform depends on (seed, epoch, index) only.
                let xs: Vec<Tensor> = parts.iter().map(|p| p[k].x.shallow_clone()).collect();
                let x = Tensor::cat(&xs, 0);
                let n = whole.indices.len() as i64;
                assert!(x.narrow(0, 0, n).equal(&whole.x), "world {world} batch {k}");
            }
        }
        // The last batch of 21 in batches of 8 has 5 images: four ranks unpadded get 1, 1, 1, 2; one rank of 8 gets none.
        let cfg = LoaderConfig { shard: Shard { rank: 0, world: 8, pad: None }, ..config(1, 1) };
        let last = Loader::new(data, (0..21).collect(), cfg).epoch(2, 2).next().unwrap().unwrap();
        assert_eq!(last.x.size(), [0, 3, 8, 6], "an empty part keeps the images' shape");
    }

    #[test]
    fn order_drop_last_and_early_drop() {
        let data = synthetic(20);
        let cfg = LoaderConfig { shuffle: false, drop_last: true, batch_size: 6, ..config(2, 2) };
        let loader = Loader::new(data, (0..20).rev().collect(), cfg);
        assert_eq!(loader.num_batches(), 3);
        let batches = collect(&loader, 4, 0);
        assert_eq!(batches.iter().map(|b| b.indices.len()).collect::<Vec<_>>(), [6, 6, 6]);
        assert_eq!(batches[0].indices, [19, 18, 17, 16, 15, 14], "unshuffled batches keep the given order");
        // Dropping after the first batch must stop the workers without hanging.
        let mut it = loader.epoch(0, 0);
        assert_eq!(it.size_hint(), (3, Some(3)));
        it.next().unwrap().unwrap();
        drop(it);
        let err = loader.epoch(0, 4).next().unwrap().unwrap_err();
        assert!(format!("{err}").contains("3 batches"), "{err}");
    }

    /// Wraps a set and fails on one index, as a corrupt file would.
    struct Broken(Arc<ImageSet>, usize);

    impl Dataset for Broken {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn num_classes(&self) -> usize {
            self.0.num_classes()
        }
        fn class_names(&self) -> &[String] {
            self.0.class_names()
        }
        fn label(&self, i: usize) -> i64 {
            self.0.label(i)
        }
        fn image_into(&self, i: usize, out: &mut Image) -> Result<()> {
            ensure!(i != self.1, "image {i} is corrupt");
            self.0.image_into(i, out)
        }
    }

    #[test]
    fn errors_end_the_epoch() {
        let cfg = LoaderConfig { shuffle: false, ..config(3, 2) };
        let loader = Loader::new(Arc::new(Broken(synthetic(40), 17)), (0..40).collect(), cfg);
        let results: Vec<Result<Batch>> = loader.epoch(0, 0).collect();
        assert_eq!(results.len(), 3, "batches 0 and 1, then the error of batch 2");
        assert!(results[..2].iter().all(|r| r.is_ok()));
        let err = results[2].as_ref().unwrap_err().report();
        assert!(err.contains("image 17 is corrupt"), "{err}");

        let bad_norm =
            LoaderConfig { normalization: Normalization { mean: vec![0.5], std: vec![0.5] }, ..config(1, 1) };
        let loader = Loader::new(synthetic(4), vec![0, 1], bad_norm);
        let err = loader.epoch(0, 0).next().unwrap().unwrap_err().report();
        assert!(err.contains("synthetic: image") && err.contains("3-channel"), "{err}");

        let too_small = Transform { augment: Augment::none(), view: CenterView { resize: 0, crop: 7 } };
        let loader = Loader::new(synthetic(4), vec![0, 1], LoaderConfig { transform: too_small, ..config(1, 1) });
        let err = loader.epoch(0, 0).next().unwrap().unwrap_err().report();
        assert!(err.contains("synthetic: image") && err.contains("data.crop = 7 does not fit the 8×6 image"), "{err}");
    }
}
