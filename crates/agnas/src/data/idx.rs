//! IDX files as MNIST and Fashion-MNIST ship them (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-*`),
//! plain or gzipped.
use super::{ImageSet, Split};
use crate::error::{ensure, Context, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Type byte of unsigned-byte data, the only kind these data sets use.
const UBYTE: u8 = 0x08;

/// `dir/name`, or `dir/name.gz` when only the compressed file is there.
pub(crate) fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))].into_iter().find(|p| p.is_file())
}

/// The images and labels of one split from the folder `dir`; one channel, classes "0", "1", ... up to the largest label.
pub fn load_idx(dir: &Path, split: Split) -> Result<ImageSet> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let locate = |kind: &str| {
        let name = format!("{prefix}-{kind}");
        find(dir, &name).with_context(|| format!("no {name} (or {name}.gz) in {}", dir.display()))
    };
    let images_path = locate("images-idx3-ubyte")?;
    let labels_path = locate("labels-idx1-ubyte")?;
    let (dims, pixels) = read_idx(&images_path, 3)?;
    let (label_dims, raw_labels) = read_idx(&labels_path, 1)?;
    ensure!(
        dims[0] == label_dims[0],
        "{} holds {} images but {} holds {} labels",
        images_path.display(),
        dims[0],
        labels_path.display(),
        label_dims[0]
    );
    let classes = raw_labels.iter().max().map_or(0, |&m| m as usize + 1);
    let labels = raw_labels.into_iter().map(i64::from).collect();
    let names = (0..classes).map(|c| c.to_string()).collect();
    let name = dir.file_name().map_or("idx".into(), |n| n.to_string_lossy().into_owned());
    ImageSet::new(name, (dims[1], dims[2], 1), pixels, labels, names)
}

/// Dimensions and data of an IDX file of unsigned bytes with `ndims` dimensions.
fn read_idx(path: &Path, ndims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .with_context(|| format!("decompressing {}", path.display()))?;
        out
    } else {
        raw
    };
    let header = 4 + 4 * ndims;
    ensure!(bytes.len() >= header, "{}: {} bytes is too short for an IDX header", path.display(), bytes.len());
    ensure!(
        bytes[..4] == [0, 0, UBYTE, ndims as u8],
        "{}: bad IDX magic {:02x?}, expected {:02x?} (unsigned bytes, {ndims} dimensions)",
        path.display(),
        &bytes[..4],
        [0, 0, UBYTE, ndims as u8]
    );
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let expected = dims.iter().product::<usize>();
    ensure!(
        bytes.len() - header == expected,
        "{}: dimensions {dims:?} need {expected} data bytes, the file has {} (truncated?)",
        path.display(),
        bytes.len() - header
    );
    bytes.drain(..header);
    Ok((dims, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn idx(ndims: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, UBYTE, ndims];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn write_set(dir: &Path, prefix: &str, gz: bool) -> Vec<u8> {
        let pixels: Vec<u8> = (0..3 * 4 * 5).map(|v| (v * 3) as u8).collect();
        let files = [
            (format!("{prefix}-images-idx3-ubyte"), idx(3, &[3, 4, 5], &pixels)),
            (format!("{prefix}-labels-idx1-ubyte"), idx(1, &[3], &[7, 0, 2])),
        ];
        for (name, bytes) in files {
            if gz {
                std::fs::write(dir.join(name + ".gz"), gzip(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
        pixels
    }

    #[test]
    fn plain_and_gzipped_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mnist = dir.path().join("mnist");
        std::fs::create_dir(&mnist).unwrap();
        let pixels = write_set(&mnist, "train", false);
        write_set(&mnist, "t10k", true);
        for split in [Split::Train, Split::Test] {
            let set = load_idx(&mnist, split).unwrap();
            assert_eq!((set.len(), set.shape(), set.num_classes()), (3, (4, 5, 1), 8));
            assert_eq!(set.labels(), &[7, 0, 2]);
            assert_eq!(set.pixels(), pixels.as_slice());
            assert_eq!(set.image(1).unwrap().data, pixels[20..40].to_vec());
            assert_eq!(set.name(), "mnist");
        }
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), "train", false);
        let images = dir.path().join("train-images-idx3-ubyte");
        let good = std::fs::read(&images).unwrap();

        std::fs::write(&images, &good[..good.len() - 1]).unwrap();
        let err = load_idx(dir.path(), Split::Train).unwrap_err().report();
        assert!(err.contains("train-images-idx3-ubyte") && err.contains("truncated"), "{err}");

        let mut bad = good.clone();
        bad[3] = 1;
        std::fs::write(&images, &bad).unwrap();
        let err = load_idx(dir.path(), Split::Train).unwrap_err().report();
        assert!(err.contains("train-images-idx3-ubyte") && err.contains("magic"), "{err}");

        std::fs::write(&images, &good).unwrap();
        std::fs::write(dir.path().join("train-labels-idx1-ubyte"), idx(1, &[2], &[1, 1])).unwrap();
        let err = load_idx(dir.path(), Split::Train).unwrap_err().report();
        assert!(err.contains("3 images") && err.contains("2 labels"), "{err}");

        let err = load_idx(dir.path(), Split::Test).unwrap_err().report();
        assert!(err.contains("t10k-images-idx3-ubyte"), "{err}");

        let mut broken = gzip(&good);
        broken.truncate(broken.len() / 2);
        std::fs::remove_file(&images).unwrap();
        std::fs::write(dir.path().join("train-images-idx3-ubyte.gz"), broken).unwrap();
        let err = load_idx(dir.path(), Split::Train).unwrap_err().report();
        assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");
    }
}
