//! Class folders of JPEG/PNG images (`root/<class>/<file>`, ImageNet style), on disk or in a tar archive.
//! Classes are numbered in alphabetical order; the images of a class are taken in file-name order.
use super::{Dataset, Image, ImageSet, Split};
use crate::error::{bail, ensure, Context, Result};
use flate2::read::GzDecoder;
use image::{imageops::FilterType, RgbImage};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Folder sets with more images than this are decoded on demand instead of up front.
const IN_MEMORY_IMAGES: usize = 200_000;
/// ... and so are sets whose decoded pixels would take more bytes than this (ImageNet-sized JPEGs).
const IN_MEMORY_BYTES: usize = 2 << 30;

/// Two images of a set that must have one size do not.
#[derive(Debug)]
pub struct MixedSizes {
    pub image: String,
    pub size: (u32, u32),
    pub first: String,
    pub first_size: (u32, u32),
}

impl std::fmt::Display for MixedSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ((w, h), (w0, h0)) = (self.size, self.first_size);
        write!(f, "{} is {w}×{h}, but {} is {w0}×{h0}: all images must have one size", self.image, self.first)
    }
}

impl std::error::Error for MixedSizes {}

fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|ext| lower.ends_with(ext))
}

/// Whether `path` is a file named like a tar archive (`.tar`, `.tar.gz`, `.tgz`).
pub fn is_archive(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    path.is_file() && [".tar", ".tar.gz", ".tgz"].iter().any(|ext| name.ends_with(ext))
}

/// Decodes JPEG or PNG bytes to 8-bit RGB; `what` names the source in the error.
fn decode_rgb(bytes: &[u8], what: &dyn Fn() -> String) -> Result<RgbImage> {
    Ok(image::load_from_memory(bytes).with_context(|| format!("decoding {}", what()))?.into_rgb8())
}

/// Decodes images 0..n on all cores into one HWC buffer. `decode(i)` yields image i (its errors name the source),
/// `describe(i)` names it for the size check: every image must have the size of the first.
pub(crate) fn decode_all(
    n: usize,
    describe: &(dyn Fn(usize) -> String + Sync),
    decode: &(dyn Fn(usize) -> Result<RgbImage> + Sync),
) -> Result<((usize, usize, usize), Vec<u8>)> {
    ensure!(n > 0, "no images to decode");
    let first = decode(0)?;
    let (w, h) = first.dimensions();
    let per_image = first.as_raw().len();
    let mut pixels = vec![0u8; n * per_image];
    pixels[..per_image].copy_from_slice(first.as_raw());
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n);
    let chunk = n.div_ceil(threads);
    // The first failure stops the other threads early: decoding a big set to report one bad file would be slow.
    let failed = AtomicBool::new(false);
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pixels
            .chunks_mut(chunk * per_image)
            .enumerate()
            .map(|(t, out)| {
                let failed = &failed;
                scope.spawn(move || -> Result<()> {
                    for (k, dst) in out.chunks_exact_mut(per_image).enumerate() {
                        let i = t * chunk + k;
                        if i == 0 {
                            continue;
                        }
                        if failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let checked = decode(i).and_then(|img| {
                            if img.dimensions() != (w, h) {
                                let (image, first) = (describe(i), describe(0));
                                bail!(MixedSizes { image, size: img.dimensions(), first, first_size: (w, h) });
                            }
                            dst.copy_from_slice(img.as_raw());
                            Ok(())
                        });
                        if checked.is_err() {
                            failed.store(true, Ordering::Relaxed);
                            return checked;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Err(crate::Error::Message("an image decoding thread panicked".into())))
            })
            .collect()
    });
    results.into_iter().collect::<Result<()>>()?;
    Ok(((h as usize, w as usize, 3), pixels))
}

/// Whether `dir` holds folders (a split of class folders).
fn holds_folders(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|entries| entries.flatten().any(|e| e.path().is_dir())).unwrap_or(false)
}

/// `root/train` when it holds the class folders (the layout of ImageNet and of the provided CIFAR-10 images).
fn class_root(root: &Path) -> PathBuf {
    let train = root.join("train");
    if holds_folders(&train) {
        train
    } else {
        root.to_path_buf()
    }
}

/// The folder of one split of a folder of images: a root that holds `train/` and `test/` or `val/` (the layouts
/// of ImageNet and of many CIFAR copies) is split by those names; any other folder is taken as it is, for either
/// split (the user pointed at the images to use). A test split that the names make ambiguous, or that a root with
/// only `train/` lacks, is an error rather than a silent use of the training images.
pub fn split_folder(root: &Path, split: Split) -> Result<PathBuf> {
    let named: Vec<PathBuf> = ["test", "val"].iter().map(|n| root.join(n)).filter(|d| holds_folders(d)).collect();
    match (split, &named[..]) {
        (Split::Train, _) => Ok(root.to_path_buf()),
        (Split::Test, [one]) => Ok(one.clone()),
        (Split::Test, [_, _]) => {
            bail!("{} holds both test/ and val/: point at the one to use", root.display())
        }
        (Split::Test, []) if holds_folders(&root.join("train")) => bail!(
            "{} holds train/ but no test/ or val/: point at the folder of test images, or give --split train to use \
             the training images",
            root.display()
        ),
        (Split::Test, _) => Ok(root.to_path_buf()),
    }
}

/// Entries of `dir` that satisfy `keep`, by name; names must be UTF-8 so that class names can be reported.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path, &str) -> bool) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} is not a UTF-8 name", path.display()))?
            .to_string();
        if !name.starts_with('.') && keep(&path, &name) {
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

/// A folder of class folders, read and decoded image by image: for sets too big to hold decoded in memory.
#[derive(Debug, Clone)]
pub struct FolderDataset {
    name: String,
    files: Vec<PathBuf>,
    labels: Vec<i64>,
    class_names: Vec<String>,
    /// (height, width) every image is resized to, so that images of any size can share a batch.
    resize: Option<(usize, usize)>,
}

impl FolderDataset {
    /// Lists `root/<class>/*.{jpg,jpeg,png}` (or `root/train/<class>/…`); decodes nothing yet.
    pub fn open(root: &Path, resize: Option<(usize, usize)>) -> Result<Self> {
        if let Some((h, w)) = resize {
            ensure!(h > 0 && w > 0, "cannot resize images to {h}×{w}");
        }
        let dir = class_root(root);
        let classes = sorted_entries(&dir, |p, _| p.is_dir())?;
        ensure!(!classes.is_empty(), "{} holds no class folders", dir.display());
        let mut files = Vec::new();
        let mut labels = Vec::new();
        let mut class_names = Vec::new();
        for (label, (class, path)) in classes.into_iter().enumerate() {
            let images = sorted_entries(&path, |p, name| p.is_file() && is_image_name(name))?;
            ensure!(!images.is_empty(), "class folder {} holds no .jpg, .jpeg or .png files", path.display());
            labels.extend(std::iter::repeat_n(label as i64, images.len()));
            files.extend(images.into_iter().map(|(_, p)| p));
            class_names.push(class);
        }
        let name = root.file_name().map_or("images".into(), |n| n.to_string_lossy().into_owned());
        Ok(FolderDataset { name, files, labels, class_names, resize })
    }

    fn decode(&self, i: usize) -> Result<RgbImage> {
        let path = self.files.get(i).with_context(|| format!("{}: no image {i}", self.name))?;
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let img = decode_rgb(&bytes, &|| path.display().to_string())?;
        Ok(match self.resize {
            Some((h, w)) if img.dimensions() != (w as u32, h as u32) => {
                image::imageops::resize(&img, w as u32, h as u32, FilterType::Triangle)
            }
            _ => img,
        })
    }

    /// Decodes every image, on all cores.
    pub fn load_all(&self) -> Result<ImageSet> {
        let (shape, pixels) =
            decode_all(self.files.len(), &|i| self.files[i].display().to_string(), &|i| self.decode(i))?;
        ImageSet::new(self.name.clone(), shape, pixels, self.labels.clone(), self.class_names.clone())
    }
}

impl Dataset for FolderDataset {
    fn len(&self) -> usize {
        self.files.len()
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
        let img = self.decode(i)?;
        out.height = img.height() as usize;
        out.width = img.width() as usize;
        out.channels = 3;
        out.data = img.into_raw();
        Ok(())
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn describe(&self, i: usize) -> String {
        self.files.get(i).map_or_else(|| format!("{}: image {i}", self.name), |p| p.display().to_string())
    }
}

/// A folder of class folders, decoded up front when it is small enough and its images have one size, else decoded
/// image by image in the loader's threads (which then report a corrupt file when they reach it).
pub fn open_folder(path: &Path) -> Result<Arc<dyn Dataset>> {
    let lazy = FolderDataset::open(path, None)?;
    let first = lazy.image(0)?;
    let bytes = lazy.len().saturating_mul(first.data.len());
    if lazy.len() > IN_MEMORY_IMAGES || bytes > IN_MEMORY_BYTES {
        tracing::info!("{}: {} images, decoded on demand", path.display(), lazy.len());
        return Ok(Arc::new(lazy));
    }
    match lazy.load_all() {
        Ok(set) => Ok(Arc::new(set)),
        Err(e) if matches!(e.kind(), crate::Error::MixedSizes(_)) => {
            tracing::info!("{}: images of several sizes, decoded on demand ({e})", path.display());
            Ok(Arc::new(lazy))
        }
        Err(e) => Err(e),
    }
}

/// Decodes a class-folder tree or a tar archive of one into memory, as RGB; all images must have one size.
pub fn load_in_memory(path: &Path) -> Result<ImageSet> {
    if is_archive(path) {
        load_archive(path)
    } else {
        FolderDataset::open(path, None)?.load_all()
    }
}

/// One image member of an archive: `<prefix>/<class>/<file>`.
struct Member {
    path: String,
    prefix: String,
    class: String,
    bytes: Vec<u8>,
}

fn read_members(archive: &Path, reader: impl Read) -> Result<Vec<Member>> {
    let mut tar = tar::Archive::new(reader);
    let mut members = Vec::new();
    for entry in tar.entries().with_context(|| format!("reading archive {}", archive.display()))? {
        let mut entry = entry.with_context(|| format!("reading archive {}", archive.display()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().with_context(|| format!("a member name in {}", archive.display()))?.into_owned();
        let parts: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        if !parts.last().is_some_and(|f| is_image_name(f) && !f.starts_with('.')) {
            continue;
        }
        let shown = parts.join("/");
        ensure!(parts.len() >= 2, "{}: member {shown} is not inside a class folder", archive.display());
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).with_context(|| format!("reading {shown} in {}", archive.display()))?;
        let class = parts[parts.len() - 2].clone();
        let prefix = parts[..parts.len() - 2].join("/");
        members.push(Member { path: shown, prefix, class, bytes });
    }
    Ok(members)
}

fn load_archive(path: &Path) -> Result<ImageSet> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let lower = path.to_string_lossy().to_ascii_lowercase();
    let file = std::io::BufReader::new(file);
    let mut members =
        if lower.ends_with(".tar") { read_members(path, file)? } else { read_members(path, GzDecoder::new(file))? };
    ensure!(!members.is_empty(), "{} holds no .jpg, .jpeg or .png images", path.display());
    let prefixes: BTreeSet<&str> = members.iter().map(|m| m.prefix.as_str()).collect();
    if prefixes.len() > 1 {
        bail!("{}: images lie under several folders ({prefixes:?}); expected one set of class folders", path.display());
    }
    members.sort_by(|a, b| (&a.class, &a.path).cmp(&(&b.class, &b.path)));
    let mut class_names: Vec<String> = Vec::new();
    let mut labels = Vec::with_capacity(members.len());
    for m in &members {
        if class_names.last() != Some(&m.class) {
            class_names.push(m.class.clone());
        }
        labels.push(class_names.len() as i64 - 1);
    }
    let describe = |i: usize| format!("{} in {}", members[i].path, path.display());
    let (shape, pixels) = decode_all(members.len(), &describe, &|i| decode_rgb(&members[i].bytes, &|| describe(i)))?;
    let name = path.file_name().map_or("archive".into(), |n| n.to_string_lossy().into_owned());
    ImageSet::new(name, shape, pixels, labels, class_names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataFormat;
    use image::{GrayImage, Luma, Rgb};

    fn rgb(w: u32, h: u32, seed: u8) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([seed, x as u8 * 10, y as u8 * 20]))
    }

    /// ant: 2 PNG (one greyscale), cat: 1 JPEG, dog: 2 PNG; the file names are listed out of order on purpose.
    fn write_tree(root: &Path) {
        for class in ["dog", "ant", "cat"] {
            std::fs::create_dir_all(root.join(class)).unwrap();
        }
        rgb(4, 3, 1).save(root.join("dog/b.png")).unwrap();
        rgb(4, 3, 2).save(root.join("dog/a.PNG")).unwrap();
        GrayImage::from_fn(4, 3, |x, _| Luma([x as u8 * 50])).save(root.join("ant/z.png")).unwrap();
        rgb(4, 3, 3).save(root.join("ant/m.png")).unwrap();
        rgb(4, 3, 200).save(root.join("cat/only.jpg")).unwrap();
        std::fs::write(root.join("cat/notes.txt"), "not an image").unwrap();
    }

    /// `eval --split test` on a root with `train/` and `test/` (or `val/`) reads the test images, never the
    /// training ones; a root without them is taken as it is; an ambiguous or missing test split is refused.
    #[test]
    fn a_test_split_is_the_test_or_val_folder_and_never_the_training_images() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(&root.join("train"));
        let err = crate::data::open_split(Some(root), DataFormat::Auto, Split::Test).err().unwrap().report();
        assert!(err.contains("holds train/ but no test/ or val/"), "{err}");
        std::fs::create_dir_all(root.join("val/ant")).unwrap();
        rgb(4, 3, 9).save(root.join("val/ant/1.png")).unwrap();
        let test = crate::data::open_split(Some(root), DataFormat::Auto, Split::Test).unwrap();
        assert_eq!((test.len(), test.num_classes()), (1, 1));
        assert_eq!(crate::data::open_split(Some(root), DataFormat::Auto, Split::Train).unwrap().len(), 5);
        std::fs::create_dir_all(root.join("test/ant")).unwrap();
        let err = crate::data::open_split(Some(root), DataFormat::Auto, Split::Test).err().unwrap().report();
        assert!(err.contains("both test/ and val/"), "{err}");
        let plain = dir.path().join("plain");
        write_tree(&plain);
        assert_eq!(crate::data::open_split(Some(&plain), DataFormat::Auto, Split::Test).unwrap().len(), 5);
    }

    fn check_tree(set: &ImageSet) {
        assert_eq!(set.class_names(), &["ant", "cat", "dog"]);
        assert_eq!(set.labels(), &[0, 0, 1, 2, 2]);
        assert_eq!(set.shape(), (3, 4, 3));
        assert_eq!(set.image(0).unwrap().data, rgb(4, 3, 3).into_raw(), "ant/m.png comes before ant/z.png");
        let grey = set.image(1).unwrap().data;
        assert_eq!(&grey[..6], &[0, 0, 0, 50, 50, 50], "greyscale is converted to RGB");
        assert_eq!(set.image(3).unwrap().data, rgb(4, 3, 2).into_raw(), "dog/a.PNG comes before dog/b.png");
        let jpeg = set.image(2).unwrap().data;
        assert!(jpeg.iter().step_by(3).all(|&r| r.abs_diff(200) < 12), "JPEG red channel: {jpeg:?}");
    }

    #[test]
    fn folder_tree_in_memory_and_lazy() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let set = load_in_memory(dir.path()).unwrap();
        check_tree(&set);
        let lazy = FolderDataset::open(dir.path(), None).unwrap();
        assert_eq!((lazy.len(), lazy.num_classes(), lazy.label(4)), (5, 3, 2));
        for i in 0..5 {
            assert_eq!(lazy.image(i).unwrap(), set.image(i).unwrap());
        }
        let small = FolderDataset::open(dir.path(), Some((2, 3))).unwrap();
        let img = small.image(0).unwrap();
        assert_eq!((img.height, img.width, img.channels, img.data.len()), (2, 3, 3, 18));
        assert_eq!(small.load_all().unwrap().shape(), (2, 3, 3));

        // The ImageNet layout: classes under root/train.
        let parent = tempfile::tempdir().unwrap();
        write_tree(&parent.path().join("train"));
        check_tree(&load_in_memory(parent.path()).unwrap());
    }

    #[test]
    fn odd_size_and_corrupt_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        rgb(5, 3, 0).save(dir.path().join("dog/c.png")).unwrap();
        let err = load_in_memory(dir.path()).unwrap_err().report();
        assert!(err.contains("dog/c.png") && err.contains("5×3"), "{err}");

        std::fs::remove_file(dir.path().join("dog/c.png")).unwrap();
        std::fs::write(dir.path().join("cat/broken.jpg"), b"\xff\xd8\xff garbage").unwrap();
        let err = load_in_memory(dir.path()).unwrap_err().report();
        assert!(err.contains("cat/broken.jpg"), "{err}");
        let lazy = FolderDataset::open(dir.path(), None).unwrap();
        assert!(lazy.image(2).unwrap_err().report().contains("cat/broken.jpg"));

        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let err = FolderDataset::open(dir.path(), None).unwrap_err().report();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn mixed_sizes_are_decoded_on_demand_and_one_size_up_front() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let same = open_folder(dir.path()).unwrap();
        assert!(same.in_memory().is_some(), "small sets of one size are decoded up front");

        rgb(7, 5, 9).save(dir.path().join("ant/n.png")).unwrap();
        let mixed = open_folder(dir.path()).unwrap();
        assert!(mixed.in_memory().is_none(), "images of several sizes are decoded on demand");
        assert_eq!((mixed.len(), mixed.num_classes()), (6, 3));
        let n = mixed.image(1).unwrap();
        assert_eq!((n.height, n.width, n.data), (5, 7, rgb(7, 5, 9).into_raw()));
        assert_eq!(mixed.image(0).unwrap().data, rgb(4, 3, 3).into_raw());
        assert!(mixed.describe(1).ends_with("ant/n.png"), "{}", mixed.describe(1));
    }

    fn write_archive(path: &Path, members: &[(&str, Vec<u8>)]) {
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes.as_slice()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
    }

    fn png(img: &RgbImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn archive_members_by_class() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set.tar.gz");
        let members = [
            ("train/cat/2.png", png(&rgb(2, 2, 1))),
            ("train/bee/9.png", png(&rgb(2, 2, 2))),
            ("train/cat/1.png", png(&rgb(2, 2, 3))),
            ("train/README.txt", b"ignored".to_vec()),
        ];
        write_archive(&path, &members);
        let set = load_in_memory(&path).unwrap();
        assert_eq!(set.class_names(), &["bee", "cat"]);
        assert_eq!(set.labels(), &[0, 1, 1]);
        assert_eq!(set.image(1).unwrap().data, rgb(2, 2, 3).into_raw());
        assert_eq!(set.name(), "set.tar.gz");

        let bad = dir.path().join("bad.tgz");
        write_archive(&bad, &[("x/cat/1.png", png(&rgb(2, 2, 1))), ("x/cat/2.png", b"\x89PNG broken".to_vec())]);
        let err = load_in_memory(&bad).unwrap_err().report();
        assert!(err.contains("x/cat/2.png") && err.contains("bad.tgz"), "{err}");

        let mixed = dir.path().join("mixed.tar.gz");
        write_archive(&mixed, &[("train/cat/1.png", png(&rgb(2, 2, 1))), ("test/cat/1.png", png(&rgb(2, 2, 1)))]);
        assert!(load_in_memory(&mixed).unwrap_err().report().contains("several folders"));

        let truncated = dir.path().join("cut.tar.gz");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        assert!(load_in_memory(&truncated).unwrap_err().report().contains("cut.tar.gz"));
    }

    /// The provided 50,000 training JPEGs; `make test` runs it when AGNAS_CIFAR10_DIR points at their unpacked folder.
    #[test]
    #[ignore = "needs the provided CIFAR-10 images: set AGNAS_CIFAR10_DIR (make test then runs it)"]
    fn provided_cifar10_images() {
        let dir = std::env::var_os("AGNAS_CIFAR10_DIR").expect("AGNAS_CIFAR10_DIR must name the unpacked images");
        let set = load_in_memory(Path::new(&dir)).unwrap();
        assert_eq!((set.len(), set.num_classes(), set.shape()), (50_000, 10, (32, 32, 3)));
        assert_eq!(set.class_names()[0], "airplane");
        assert_eq!(set.class_names()[9], "truck");
        for c in 0..10 {
            assert_eq!(set.labels().iter().filter(|&&l| l == c).count(), 5000, "class {c}");
        }
        // The embedded subset is a labelled selection of exactly these images.
        let known: std::collections::HashMap<&[u8], i64> =
            (0..set.len()).map(|i| (set.image_bytes(i).unwrap(), set.labels()[i])).collect();
        let subset = crate::data::embedded::cifar10_subset().unwrap();
        for i in 0..subset.len() {
            assert_eq!(known.get(subset.image_bytes(i).unwrap()), Some(&subset.labels()[i]), "embedded image {i}");
        }
    }
}
