//! A balanced CIFAR-10 subset compiled into agnas: 1,000 training images per class (10,000), the original JPEGs,
//! so that a search runs without any download. The pack is made from the provided training images with
//!
//! ```text
//! python3 tools/pack_embedded_subset.py /work/shared/data/cifar10/cifar10-train-jpg.tar.gz \
//!     crates/agnas/data/cifar10-subset.pack.gz
//! ```
//!
//! (defaults `--per-class 1000 --seed 0`; the script's docstring describes the format read here).
use super::folder::decode_all;
use super::ImageSet;
use crate::error::{ensure, Context, Result};
use std::sync::OnceLock;

pub const SUBSET_NAME: &str = "cifar10-subset";
static PACK_GZ: &[u8] = include_bytes!("../../data/cifar10-subset.pack.gz");
const MAGIC: &[u8; 8] = b"AGNASPK\0";
const VERSION: u32 = 1;

/// The embedded subset, decoded on first use (on all cores) and copied from the cache afterwards.
pub fn cifar10_subset() -> Result<ImageSet> {
    // The error is kept as text because an Error cannot be cloned out of the cache.
    static DECODED: OnceLock<std::result::Result<ImageSet, String>> = OnceLock::new();
    DECODED
        .get_or_init(|| gunzip(PACK_GZ).and_then(|pack| decode_pack(&pack)).map_err(|e| e.report()))
        .clone()
        .map_err(crate::Error::Message)
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(bytes.len() * 3);
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).context("embedded pack: corrupt gzip stream")?;
    Ok(out)
}

/// Reads little-endian fields from the front of the pack.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let field = self
            .bytes
            .get(self.at..self.at.saturating_add(n))
            .with_context(|| format!("embedded pack: truncated at byte {} reading {what}", self.at))?;
        self.at += n;
        Ok(field)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

struct Pack<'a> {
    class_names: Vec<String>,
    labels: Vec<i64>,
    jpegs: Vec<&'a [u8]>,
}

fn parse_pack(bytes: &[u8]) -> Result<Pack<'_>> {
    let mut r = Reader { bytes, at: 0 };
    ensure!(r.take(MAGIC.len(), "the magic")? == MAGIC, "embedded pack: bad magic");
    let version = r.u32("the version")?;
    ensure!(version == VERSION, "embedded pack: version {version}, this build reads version {VERSION}");
    let classes = r.u32("the class count")? as usize;
    let mut class_names = Vec::new();
    for c in 0..classes {
        let len = r.u32("a class name length")? as usize;
        let name = std::str::from_utf8(r.take(len, "a class name")?)
            .with_context(|| format!("embedded pack: class name {c} is not UTF-8"))?;
        class_names.push(name.to_string());
    }
    let count = r.u32("the image count")? as usize;
    let mut labels = Vec::new();
    let mut jpegs = Vec::new();
    for i in 0..count {
        let label = r.u32("a label")? as usize;
        ensure!(label < classes, "embedded pack: image {i} has label {label}, but there are {classes} classes");
        let len = r.u32("an image length")? as usize;
        labels.push(label as i64);
        jpegs.push(r.take(len, "image bytes")?);
    }
    ensure!(r.at == bytes.len(), "embedded pack: {} bytes after the last image", bytes.len() - r.at);
    Ok(Pack { class_names, labels, jpegs })
}

fn decode_pack(bytes: &[u8]) -> Result<ImageSet> {
    let pack = parse_pack(bytes)?;
    let describe = |i: usize| format!("embedded image {i}");
    let decode = |i: usize| {
        Ok(image::load_from_memory(pack.jpegs[i]).with_context(|| format!("decoding {}", describe(i)))?.into_rgb8())
    };
    let (shape, pixels) = decode_all(pack.jpegs.len(), &describe, &decode)?;
    ImageSet::new(SUBSET_NAME, shape, pixels, pack.labels, pack.class_names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;

    #[test]
    fn subset_has_1000_images_per_class() {
        let set = cifar10_subset().unwrap();
        assert_eq!((set.len(), set.num_classes(), set.shape()), (10_000, 10, (32, 32, 3)));
        let names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
        assert_eq!(set.class_names(), &names);
        for c in 0..10 {
            assert_eq!(set.labels().iter().filter(|&&l| l == c).count(), 1000, "class {c}");
        }
        // Real photographs, not blank decodes.
        let mean = set.pixels().iter().map(|&v| v as f64).sum::<f64>() / set.pixels().len() as f64;
        assert!((100.0..140.0).contains(&mean), "mean pixel value {mean}");
        assert_eq!(cifar10_subset().unwrap(), set, "the cache hands out the same set");
    }

    #[test]
    fn damaged_packs_are_rejected() {
        let pack = gunzip(PACK_GZ).unwrap();
        assert!(gunzip(&PACK_GZ[..1000]).err().unwrap().report().contains("gzip"));
        let mut bad = pack[..100].to_vec();
        assert!(parse_pack(&bad).err().unwrap().report().contains("truncated"));
        bad[0] = b'X';
        assert!(parse_pack(&bad).err().unwrap().report().contains("magic"));
        let mut newer = pack.clone();
        newer[8] = 2;
        assert!(parse_pack(&newer).err().unwrap().report().contains("version 2"));
        let mut longer = pack;
        longer.push(0);
        assert!(parse_pack(&longer).err().unwrap().report().contains("1 bytes after"));
    }
}
