//! The official binary releases of CIFAR-10 (`cifar-10-batches-bin`) and CIFAR-100 (`cifar-100-binary`).
use super::{ImageSet, Split};
use crate::error::{ensure, Context, Result};
use std::path::{Path, PathBuf};

pub const CIFAR10_NAME: &str = "cifar10";
pub const CIFAR100_NAME: &str = "cifar100";
pub(crate) const CIFAR10_DIR: &str = "cifar-10-batches-bin";
pub(crate) const CIFAR100_DIR: &str = "cifar-100-binary";
const SIDE: usize = 32;
/// One 32×32 image as stored: the red plane, then green, then blue.
const PIXELS: usize = 3 * SIDE * SIDE;

/// The folder that holds `file`: `path` itself, or its child `dir` (the folder the official archive unpacks to).
pub(crate) fn locate(path: &Path, dir: &str, file: &str) -> Option<PathBuf> {
    [path.to_path_buf(), path.join(dir)].into_iter().find(|p| p.join(file).is_file())
}

/// Where a release is and how its records look.
struct Layout {
    name: &'static str,
    dir: &'static str,
    classes: usize,
    /// Label bytes before the pixels; the last one is the label used (CIFAR-100: coarse, then fine).
    label_bytes: usize,
    names_file: &'static str,
}

const CIFAR10: Layout =
    Layout { name: CIFAR10_NAME, dir: CIFAR10_DIR, classes: 10, label_bytes: 1, names_file: "batches.meta.txt" };
const CIFAR100: Layout =
    Layout { name: CIFAR100_NAME, dir: CIFAR100_DIR, classes: 100, label_bytes: 2, names_file: "fine_label_names.txt" };

/// CIFAR-10 from `path` = `cifar-10-batches-bin` or the folder containing it: `data_batch_1..5.bin` or `test_batch.bin`.
pub fn load_cifar10(path: &Path, split: Split) -> Result<ImageSet> {
    let files: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".into()],
    };
    load(path, &CIFAR10, &files)
}

/// CIFAR-100 with its 100 fine labels from `path` = `cifar-100-binary` or the folder containing it.
pub fn load_cifar100(path: &Path, split: Split) -> Result<ImageSet> {
    let file = match split {
        Split::Train => "train.bin",
        Split::Test => "test.bin",
    };
    load(path, &CIFAR100, &[file.to_string()])
}

fn load(path: &Path, layout: &Layout, files: &[String]) -> Result<ImageSet> {
    let dir = locate(path, layout.dir, &files[0]).with_context(|| {
        format!(
            "no {} data at {}: expected {} there or in its {} folder",
            layout.name,
            path.display(),
            files[0],
            layout.dir
        )
    })?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for file in files {
        read_records(&dir.join(file), layout, &mut pixels, &mut labels)?;
    }
    let names = class_names(&dir.join(layout.names_file), layout.classes)?;
    ImageSet::new(layout.name, (SIDE, SIDE, 3), pixels, labels, names)
}

/// Appends the records of one batch file, turning each planar image into HWC.
fn read_records(file: &Path, layout: &Layout, pixels: &mut Vec<u8>, labels: &mut Vec<i64>) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let record = layout.label_bytes + PIXELS;
    ensure!(
        !bytes.is_empty() && bytes.len() % record == 0,
        "{}: {} bytes is not a whole number of {record}-byte {} records (truncated?)",
        file.display(),
        bytes.len(),
        layout.name
    );
    pixels.reserve(bytes.len() / record * PIXELS);
    for (r, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[layout.label_bytes - 1] as usize;
        ensure!(
            label < layout.classes,
            "{}: record {r} has label {label}, but {} has {} classes",
            file.display(),
            layout.name,
            layout.classes
        );
        labels.push(label as i64);
        let planes = &rec[layout.label_bytes..];
        for p in 0..SIDE * SIDE {
            pixels.extend_from_slice(&[planes[p], planes[SIDE * SIDE + p], planes[2 * SIDE * SIDE + p]]);
        }
    }
    Ok(())
}

/// Class names from the release's text file when it is there, else "0", "1", ...
fn class_names(file: &Path, classes: usize) -> Result<Vec<String>> {
    if !file.is_file() {
        return Ok((0..classes).map(|c| c.to_string()).collect());
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    ensure!(names.len() == classes, "{}: {} class names, expected {classes}", file.display(), names.len());
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;

    /// A record whose pixels encode (image, channel, position), so that a transposition error shows.
    fn record(prefix: &[u8], image: usize) -> Vec<u8> {
        let mut r = prefix.to_vec();
        for ch in 0..3 {
            r.extend((0..SIDE * SIDE).map(|p| (image * 31 + ch * 7 + p) as u8));
        }
        r
    }

    fn check_pixels(set: &ImageSet, i: usize, image: usize) {
        let img = set.image(i).unwrap();
        for p in 0..SIDE * SIDE {
            for ch in 0..3 {
                assert_eq!(img.data[p * 3 + ch], (image * 31 + ch * 7 + p) as u8, "image {i} pixel {p} ch {ch}");
            }
        }
    }

    #[test]
    fn cifar10_batches_round_trip() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(CIFAR10_DIR);
        std::fs::create_dir(&dir).unwrap();
        for b in 1..=5 {
            let data: Vec<u8> = (0..3).flat_map(|k| record(&[((b * 3 + k) % 10) as u8], b * 3 + k)).collect();
            std::fs::write(dir.join(format!("data_batch_{b}.bin")), data).unwrap();
        }
        std::fs::write(dir.join("test_batch.bin"), record(&[9], 99)).unwrap();
        let names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
        std::fs::write(dir.join("batches.meta.txt"), names.join("\n") + "\n\n").unwrap();

        // Both the release folder and its parent work.
        for path in [root.path(), dir.as_path()] {
            let train = load_cifar10(path, Split::Train).unwrap();
            assert_eq!((train.len(), train.num_classes(), train.shape()), (15, 10, (32, 32, 3)));
            assert_eq!(train.class_names()[9], "truck");
            for i in 0..15 {
                assert_eq!(train.label(i), ((i + 3) % 10) as i64);
                check_pixels(&train, i, i + 3);
            }
        }
        let test = load_cifar10(root.path(), Split::Test).unwrap();
        assert_eq!((test.len(), test.label(0)), (1, 9));
        check_pixels(&test, 0, 99);

        std::fs::remove_file(dir.join("batches.meta.txt")).unwrap();
        assert_eq!(load_cifar10(root.path(), Split::Test).unwrap().class_names()[3], "3");
    }

    #[test]
    fn cifar100_uses_the_fine_label() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> =
            [(3u8, 77u8), (19, 5)].iter().enumerate().flat_map(|(i, &(c, f))| record(&[c, f], i)).collect();
        std::fs::write(dir.path().join("train.bin"), data).unwrap();
        let set = load_cifar100(dir.path(), Split::Train).unwrap();
        assert_eq!((set.len(), set.num_classes(), set.label(0), set.label(1)), (2, 100, 77, 5));
        check_pixels(&set, 1, 1);
        assert_eq!(set.name(), CIFAR100_NAME);
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_cifar10(dir.path(), Split::Test).unwrap_err().report();
        assert!(err.contains("test_batch.bin"), "{err}");

        let mut data = record(&[1], 0);
        data.pop();
        std::fs::write(dir.path().join("test_batch.bin"), &data).unwrap();
        let err = load_cifar10(dir.path(), Split::Test).unwrap_err().report();
        assert!(err.contains("test_batch.bin") && err.contains("truncated"), "{err}");

        std::fs::write(dir.path().join("test_batch.bin"), record(&[10], 0)).unwrap();
        let err = load_cifar10(dir.path(), Split::Test).unwrap_err().report();
        assert!(err.contains("test_batch.bin") && err.contains("label 10"), "{err}");

        std::fs::write(dir.path().join("data_batch_1.bin"), record(&[1], 0)).unwrap();
        let err = load_cifar10(dir.path(), Split::Train).unwrap_err().report();
        assert!(err.contains("data_batch_2.bin"), "{err}");

        std::fs::write(dir.path().join("test.bin"), record(&[0, 100], 0)).unwrap();
        let err = load_cifar100(dir.path(), Split::Test).unwrap_err().report();
        assert!(err.contains("test.bin") && err.contains("label 100"), "{err}");
    }
}
