//! What happens to one image between decoding and the batch, as torchvision composes it: the geometry (either
//! `RandomResizedCrop(size, scale, ratio)` or `Resize(resize)` + `CenterCrop(crop)`), then `RandomCrop(size,
//! padding)`, `RandomHorizontalFlip()`, `ColorJitter(...)`, `ToTensor()`, `Normalize(mean, std)` and the DARTS
//! `Cutout(length)`.
//!
//! Resampling and colour work on f32 values in [0, 1], as torchvision's tensor path does on a float image
//! (`resize(..., antialias=True)`): no rounding to u8 between the steps, unlike its PIL path.
use super::color;
use super::resample::{resample, unit, Rect};
use super::{Image, Normalization};
use crate::error::{ensure, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// Which augmentations run on training images; all off by default.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Zero padding on every side before a random crop back to the size before padding (0 = no crop).
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
    /// Side of the square zeroed after normalisation (0 = no cutout).
    pub cutout: usize,
    /// A random region scaled to a square (ImageNet training); these images ignore `data.resize` and `data.crop`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_resized_crop: Option<RandomResizedCrop>,
    /// Random brightness, contrast, saturation and hue, applied in a random order after the flip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color_jitter: Option<ColorJitter>,
}

/// torchvision's `RandomResizedCrop(size, scale, ratio)` with bilinear, antialiased resizing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomResizedCrop {
    /// Side of the square the region is scaled to.
    pub size: usize,
    /// Range of the region's share of the image area.
    pub scale: [f64; 2],
    /// Range of the region's width / height.
    pub ratio: [f64; 2],
}

impl Default for RandomResizedCrop {
    fn default() -> Self {
        RandomResizedCrop { size: 224, scale: [0.08, 1.0], ratio: [3.0 / 4.0, 4.0 / 3.0] }
    }
}

/// torchvision's `ColorJitter(brightness, contrast, saturation, hue)`: factors drawn from [max(0, 1 − x), 1 + x]
/// (hue: a shift in [−hue, hue] turns); 0 leaves that adjustment out.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColorJitter {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    /// At most 0.5 (half a turn).
    pub hue: f64,
}

/// The geometry of images that are not random-resized-cropped (held-out, validation and test images, and training
/// images without `random_resized_crop`): torchvision's `Resize(resize)` then `CenterCrop(crop)`; 0 skips a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CenterView {
    /// The shorter side becomes this; the longer one keeps the aspect ratio.
    pub resize: usize,
    /// Side of the square cut from the centre.
    pub crop: usize,
}

/// Everything done to one image: the geometry (the augmentation's random resized crop, else `view`), then the rest
/// of the augmentation and the normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Transform {
    pub augment: Augment,
    pub view: CenterView,
}

/// Which part of the image the geometry reads, the size it scales that part to, and the part of the scaled image
/// it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    region: Rect,
    scaled: (usize, usize),
    window: Rect,
}

impl View {
    fn size(&self) -> (usize, usize) {
        (self.window.height, self.window.width)
    }
}

/// The colour adjustments of one image: brightness, contrast, saturation, hue factors (`None` = off), applied in
/// `order` (a permutation of 0..4, as `ColorJitter`'s `randperm(4)`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Jitter {
    order: [usize; 4],
    factors: [Option<f64>; 4],
}

/// The random choices for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Draw {
    /// `None`: the image as it is.
    view: Option<View>,
    /// Offset of the padded crop in the padded image; `crop_padding` means no shift.
    top: usize,
    left: usize,
    flip: bool,
    jitter: Option<Jitter>,
    /// Centre (row, column) of the cutout square.
    cutout: Option<(usize, usize)>,
}

/// Buffers of one thread, reused image after image so that the loader's threads do not allocate per sample.
#[derive(Default)]
struct Scratch {
    rows: Vec<f32>,
    geometry: Vec<f32>,
    placed: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

fn uniform(rng: &mut ChaCha8Rng, [low, high]: [f64; 2]) -> f64 {
    low + (high - low) * rng.gen::<f64>()
}

impl Augment {
    pub fn none() -> Self {
        Augment::default()
    }

    /// Rejects impossible settings, naming the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(r) = &self.random_resized_crop {
            ensure!(r.size > 0, "train.augment.random_resized_crop.size must be at least 1");
            for (name, [low, high]) in [("scale", r.scale), ("ratio", r.ratio)] {
                ensure!(
                    low.is_finite() && high.is_finite() && 0.0 < low && low <= high,
                    "train.augment.random_resized_crop.{name} must be [low, high] with 0 < low <= high (got [{low}, \
                     {high}])"
                );
            }
        }
        if let Some(j) = &self.color_jitter {
            for (name, v) in [("brightness", j.brightness), ("contrast", j.contrast), ("saturation", j.saturation)] {
                ensure!(v.is_finite() && v >= 0.0, "train.augment.color_jitter.{name} must be >= 0 (got {v})");
            }
            ensure!((0.0..=0.5).contains(&j.hue), "train.augment.color_jitter.hue must be in [0, 0.5] (got {})", j.hue);
        }
        Ok(())
    }
}

impl RandomResizedCrop {
    /// torchvision's `get_params`: ten tries of a random area share and log-uniform aspect ratio, the first that fits
    /// placed uniformly; else the central crop of the allowed aspect ratio nearest the image's.
    fn region(&self, height: usize, width: usize, rng: &mut ChaCha8Rng) -> Rect {
        let area = (height * width) as f64;
        let log_ratio = [self.ratio[0].ln(), self.ratio[1].ln()];
        for _ in 0..10 {
            let target = area * uniform(rng, self.scale);
            let aspect = uniform(rng, log_ratio).exp();
            // Python's round: ties to even.
            let w = (target * aspect).sqrt().round_ties_even() as usize;
            let h = (target / aspect).sqrt().round_ties_even() as usize;
            if 0 < w && w <= width && 0 < h && h <= height {
                let top = rng.gen_range(0..=height - h);
                let left = rng.gen_range(0..=width - w);
                return Rect { top, left, height: h, width: w };
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (h, w) = if in_ratio < self.ratio[0] {
            ((width as f64 / self.ratio[0]).round_ties_even() as usize, width)
        } else if in_ratio > self.ratio[1] {
            (height, (height as f64 * self.ratio[1]).round_ties_even() as usize)
        } else {
            (height, width)
        };
        Rect { top: (height - h) / 2, left: (width - w) / 2, height: h, width: w }
    }
}

impl ColorJitter {
    fn draw(&self, rng: &mut ChaCha8Rng) -> Jitter {
        let mut order = [0, 1, 2, 3];
        order.shuffle(rng);
        let mut factors = [None; 4];
        for (k, spread) in [self.brightness, self.contrast, self.saturation].into_iter().enumerate() {
            factors[k] = (spread > 0.0).then(|| uniform(rng, [(1.0 - spread).max(0.0), 1.0 + spread]));
        }
        factors[3] = (self.hue > 0.0).then(|| uniform(rng, [-self.hue, self.hue]));
        Jitter { order, factors }
    }
}

impl Jitter {
    fn apply(&self, pixels: &mut [f32], channels: usize) {
        for &k in &self.order {
            let Some(f) = self.factors[k] else { continue };
            match k {
                0 => color::brightness(pixels, f),
                1 => color::contrast(pixels, channels, f),
                2 => color::saturation(pixels, channels, f),
                _ => color::hue(pixels, channels, f),
            }
        }
    }
}

impl CenterView {
    /// Rejects a crop that cannot fit, naming the fields.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.resize == 0 || self.crop <= self.resize,
            "data.crop ({}) must not exceed data.resize ({}), the shorter side it is cut from",
            self.crop,
            self.resize
        );
        Ok(())
    }

    fn plan(&self, height: usize, width: usize) -> Result<Option<View>> {
        if self.resize == 0 && self.crop == 0 {
            return Ok(None);
        }
        let scaled = if self.resize > 0 { shorter_side_to(self.resize, height, width) } else { (height, width) };
        let window = if self.crop == 0 {
            Rect::whole(scaled.0, scaled.1)
        } else {
            ensure!(
                self.crop <= scaled.0 && self.crop <= scaled.1,
                "data.crop = {} does not fit the {}×{} image{}",
                self.crop,
                scaled.0,
                scaled.1,
                if self.resize > 0 { format!(" (resized from {height}×{width})") } else { String::new() }
            );
            let centre = |len: usize| ((len - self.crop) as f64 / 2.0).round_ties_even() as usize;
            Rect { top: centre(scaled.0), left: centre(scaled.1), height: self.crop, width: self.crop }
        };
        Ok(Some(View { region: Rect::whole(height, width), scaled, window }))
    }
}

/// torchvision's `Resize(size)` with one number: the shorter side becomes `size`, the longer one is truncated.
fn shorter_side_to(size: usize, height: usize, width: usize) -> (usize, usize) {
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    let long = ((size * long) as f64 / short as f64) as usize;
    if width <= height {
        (long, size)
    } else {
        (size, long)
    }
}

impl Transform {
    /// (height, width) an image of `height` × `width` comes out at.
    pub fn output_size(&self, height: usize, width: usize) -> Result<(usize, usize)> {
        if let Some(r) = &self.augment.random_resized_crop {
            return Ok((r.size, r.size));
        }
        Ok(self.view.plan(height, width)?.map_or((height, width), |v| v.size()))
    }

    /// Writes the transformed, normalised image into `out` as CHW f32 (`out.len()` = C × [`Transform::output_size`]).
    pub fn apply(&self, image: &Image, norm: &Normalization, rng: &mut ChaCha8Rng, out: &mut [f32]) -> Result<()> {
        let draw = self.draw(image.height, image.width, rng)?;
        self.render(image, norm, &draw, out)
    }

    /// Draws in torchvision's order: the random resized crop, the padded crop's row and column, the flip, the
    /// jitter's order and factors, then the cutout's row and column. Steps that are off draw nothing.
    fn draw(&self, height: usize, width: usize, rng: &mut ChaCha8Rng) -> Result<Draw> {
        let a = &self.augment;
        let view = match &a.random_resized_crop {
            Some(r) => Some(View {
                region: r.region(height, width, rng),
                scaled: (r.size, r.size),
                window: Rect::whole(r.size, r.size),
            }),
            None => self.view.plan(height, width)?,
        };
        let (h, w) = view.map_or((height, width), |v| v.size());
        let p = a.crop_padding;
        let (top, left) = if p > 0 { (rng.gen_range(0..=2 * p), rng.gen_range(0..=2 * p)) } else { (0, 0) };
        let flip = a.hflip && rng.gen_bool(0.5);
        let jitter = a.color_jitter.map(|j| j.draw(rng));
        let cutout = (a.cutout > 0).then(|| (rng.gen_range(0..h), rng.gen_range(0..w)));
        Ok(Draw { view, top, left, flip, jitter, cutout })
    }

    fn render(&self, image: &Image, norm: &Normalization, draw: &Draw, out: &mut [f32]) -> Result<()> {
        let (h, w, c) = (image.height, image.width, image.channels);
        ensure!(h > 0 && w > 0 && c > 0, "cannot transform an empty {h}×{w}×{c} image");
        ensure!(image.data.len() == h * w * c, "image data holds {} bytes, not {h}×{w}×{c}", image.data.len());
        ensure!(
            norm.mean.len() == c && norm.std.len() == c,
            "the normalisation has {} means and {} stds for {c}-channel images",
            norm.mean.len(),
            norm.std.len()
        );
        let (oh, ow) = draw.view.map_or((h, w), |v| v.size());
        ensure!(out.len() == oh * ow * c, "output holds {} values, not {c}×{oh}×{ow}", out.len());
        SCRATCH.with_borrow_mut(|s| {
            match draw.view {
                Some(v) => resample(image, v.region, v.scaled, v.window, &mut s.rows, &mut s.geometry),
                None => {
                    s.geometry.clear();
                    s.geometry.extend(image.data.iter().map(|&v| unit(v)));
                }
            }
            self.place(&s.geometry, (oh, ow, c), draw, &mut s.placed);
            if let Some(j) = &draw.jitter {
                j.apply(&mut s.placed, c);
            }
            for (ch, plane) in out.chunks_exact_mut(oh * ow).enumerate() {
                for (value, px) in plane.iter_mut().zip(s.placed.chunks_exact(c)) {
                    *value = (px[ch] - norm.mean[ch]) / norm.std[ch];
                }
            }
        });
        if let Some((cy, cx)) = draw.cutout {
            let half = self.augment.cutout / 2;
            let (y0, y1) = (cy.saturating_sub(half), (cy + half).min(oh));
            let (x0, x1) = (cx.saturating_sub(half), (cx + half).min(ow));
            for plane in out.chunks_exact_mut(oh * ow) {
                for row in plane.chunks_exact_mut(ow).take(y1).skip(y0) {
                    row[x0..x1].fill(0.0);
                }
            }
        }
        Ok(())
    }

    /// The padded crop and the flip of the HWC `image`, into `out`. Padding is black: 0 before normalisation.
    fn place(&self, image: &[f32], (h, w, c): (usize, usize, usize), draw: &Draw, out: &mut Vec<f32>) {
        let p = self.augment.crop_padding as isize;
        out.clear();
        out.resize(h * w * c, 0.0);
        for (y, row) in out.chunks_exact_mut(w * c).enumerate() {
            let sy = y as isize + draw.top as isize - p;
            if !(0..h as isize).contains(&sy) {
                continue;
            }
            for (x, px) in row.chunks_exact_mut(c).enumerate() {
                let cx = if draw.flip { w - 1 - x } else { x };
                let sx = cx as isize + draw.left as isize - p;
                if (0..w as isize).contains(&sx) {
                    px.copy_from_slice(&image[(sy as usize * w + sx as usize) * c..][..c]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn image(h: usize, w: usize, c: usize) -> Image {
        let data = (0..h * w * c).map(|v| (v * 7 % 251) as u8 + 1).collect();
        Image { height: h, width: w, channels: c, data }
    }

    fn identity(c: usize) -> Normalization {
        Normalization { mean: vec![0.0; c], std: vec![1.0; c] }
    }

    fn cifar(crop_padding: usize, hflip: bool, cutout: usize) -> Transform {
        Transform { augment: Augment { crop_padding, hflip, cutout, ..Augment::none() }, view: CenterView::default() }
    }

    fn plain(top: usize, left: usize, flip: bool, cutout: Option<(usize, usize)>) -> Draw {
        Draw { view: None, top, left, flip, jitter: None, cutout }
    }

    /// Literal torchvision: pad a copy with zeros, cut the window, mirror it, normalise, then cut out.
    fn reference(aug: &Augment, img: &Image, norm: &Normalization, d: &Draw) -> Vec<f32> {
        let (h, w, c, p) = (img.height, img.width, img.channels, aug.crop_padding);
        let (ph, pw) = (h + 2 * p, w + 2 * p);
        let mut padded = vec![0u8; ph * pw * c];
        for y in 0..h {
            for x in 0..w {
                for k in 0..c {
                    padded[((y + p) * pw + x + p) * c + k] = img.data[(y * w + x) * c + k];
                }
            }
        }
        let mut out = vec![0f32; c * h * w];
        for k in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let cx = if d.flip { w - 1 - x } else { x };
                    let v = padded[((y + d.top) * pw + cx + d.left) * c + k] as f32;
                    out[(k * h + y) * w + x] = (v / 255.0 - norm.mean[k]) / norm.std[k];
                }
            }
        }
        if let Some((cy, cx)) = d.cutout {
            let l = aug.cutout as isize / 2;
            let clip = |v: isize, n: usize| v.clamp(0, n as isize) as usize;
            for k in 0..c {
                for y in clip(cy as isize - l, h)..clip(cy as isize + l, h) {
                    for x in clip(cx as isize - l, w)..clip(cx as isize + l, w) {
                        out[(k * h + y) * w + x] = 0.0;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn crop_with_known_offset() {
        // 2×3 single-channel image, padding 1: the window starting at padded (0, 2) sees row -1 (padding) and
        // columns 1..=3, the last of which is padding.
        let img = Image { height: 2, width: 3, channels: 1, data: vec![10, 20, 30, 40, 50, 60] };
        let t = cifar(1, false, 0);
        let mut out = vec![0f32; 6];
        t.render(&img, &identity(1), &plain(0, 2, false, None), &mut out).unwrap();
        let expect: Vec<f32> = [0, 0, 0, 20, 30, 0].iter().map(|&v| v as f32 / 255.0).collect();
        assert_eq!(out, expect);
        // The centred window is the image itself.
        t.render(&img, &identity(1), &plain(1, 1, false, None), &mut out).unwrap();
        assert_eq!(out, img.data.iter().map(|&v| v as f32 / 255.0).collect::<Vec<_>>());
        // Flip after the crop: the row of the shifted window read backwards.
        t.render(&img, &identity(1), &plain(1, 2, true, None), &mut out).unwrap();
        let expect: Vec<f32> = [0, 30, 20, 0, 60, 50].iter().map(|&v| v as f32 / 255.0).collect();
        assert_eq!(out, expect);
    }

    #[test]
    fn padding_is_zero_before_normalisation() {
        let img = Image { height: 1, width: 1, channels: 2, data: vec![255, 255] };
        let norm = Normalization { mean: vec![0.5, 0.25], std: vec![0.5, 0.25] };
        let t = cifar(1, false, 0);
        let mut out = vec![0f32; 2];
        t.render(&img, &norm, &plain(0, 0, false, None), &mut out).unwrap();
        assert_eq!(out, vec![-1.0, -1.0], "padding must normalise like a black pixel");
        t.render(&img, &norm, &plain(1, 1, false, None), &mut out).unwrap();
        assert_eq!(out, vec![1.0, 3.0]);
    }

    #[test]
    fn cutout_is_clipped_and_zero_after_normalisation() {
        let img = image(5, 6, 2);
        let norm = Normalization { mean: vec![0.9, 0.9], std: vec![0.1, 0.1] };
        let mut out = vec![0f32; 60];
        cifar(0, false, 4).render(&img, &norm, &plain(0, 0, false, Some((0, 5))), &mut out).unwrap();
        // Rows 0..2 and columns 3..6 are zeroed in both channels; nothing else is.
        for k in 0..2 {
            for y in 0..5 {
                for x in 0..6 {
                    let v = out[(k * 5 + y) * 6 + x];
                    assert_eq!(v == 0.0, y < 2 && x >= 3, "channel {k} ({y}, {x}) = {v}");
                }
            }
        }
    }

    #[test]
    fn random_draws_match_the_reference() {
        let img = image(8, 7, 3);
        let norm = Normalization { mean: vec![0.4, 0.5, 0.6], std: vec![0.2, 0.3, 0.25] };
        let t = cifar(3, true, 4);
        let mut seen_flips = [false; 2];
        let mut corners = [false; 2];
        for seed in 0..300 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let draw = t.draw(8, 7, &mut rng).unwrap();
            assert!(draw.top <= 6 && draw.left <= 6);
            seen_flips[draw.flip as usize] = true;
            corners[0] |= draw.top == 0 && draw.left == 0;
            corners[1] |= draw.top == 6 && draw.left == 6;
            let mut out = vec![0f32; 8 * 7 * 3];
            t.apply(&img, &norm, &mut ChaCha8Rng::seed_from_u64(seed), &mut out).unwrap();
            assert_eq!(out, reference(&t.augment, &img, &norm, &draw), "seed {seed}: {draw:?}");
        }
        assert_eq!(seen_flips, [true, true]);
        assert_eq!(corners, [true, true], "crop offsets must reach both extremes");
    }

    #[test]
    fn no_augmentation_is_plain_normalisation() {
        let img = image(3, 2, 3);
        let norm = Normalization::cifar10();
        let mut out = vec![0f32; 18];
        Transform::default().apply(&img, &norm, &mut ChaCha8Rng::seed_from_u64(0), &mut out).unwrap();
        for k in 0..3 {
            for i in 0..6 {
                let v = (img.data[i * 3 + k] as f32 / 255.0 - norm.mean[k]) / norm.std[k];
                assert_eq!(out[k * 6 + i], v);
            }
        }
        let err = Transform::default().apply(&img, &identity(1), &mut ChaCha8Rng::seed_from_u64(0), &mut out);
        assert!(format!("{}", err.unwrap_err()).contains("3-channel"));
        let json = serde_json::to_string(&Augment { crop_padding: 4, hflip: true, cutout: 16, ..Augment::none() });
        assert_eq!(json.unwrap(), r#"{"crop_padding":4,"hflip":true,"cutout":16}"#);
    }

    /// torchvision's rendering of fixed parameters (`tools/make_transform_fixtures.py`): its tensor path on float
    /// images, `antialias=True`. Both sides compute in f32 from the same u8 pixels and differ only in the order of
    /// float operations (filter weights normalised in f64 here, in f32 there; the contrast mean summed in another
    /// order): 5.3e-6 at most over the cases, after dividing by the ImageNet std. PIL's uint8 path lies up to 0.18
    /// away (see the fixture README), so it could not tell a wrong formula from its rounding.
    const TORCHVISION_TOLERANCE: f32 = 2e-5;

    fn fixture() -> (std::collections::HashMap<String, tch::Tensor>, serde_json::Value) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let tensors = tch::Tensor::read_safetensors(dir.join("transforms.safetensors")).unwrap();
        let doc = std::fs::read_to_string(dir.join("transforms.json")).unwrap();
        (tensors.into_iter().collect(), serde_json::from_str(&doc).unwrap())
    }

    fn floats(v: &serde_json::Value) -> Vec<f64> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    }

    fn size(v: &serde_json::Value) -> usize {
        v.as_u64().unwrap() as usize
    }

    /// The transform and the draw a fixture case describes.
    fn case_draw(case: &serde_json::Value, (h, w): (usize, usize)) -> (Transform, Draw) {
        if case.get("box").is_none() {
            let view = CenterView { resize: size(&case["resize"]), crop: size(&case["crop"]) };
            let t = Transform { augment: Augment::none(), view };
            let draw = t.draw(h, w, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
            return (t, draw);
        }
        let b: Vec<usize> = case["box"].as_array().unwrap().iter().map(size).collect();
        let side = size(&case["size"]);
        let order: Vec<usize> = case["order"].as_array().unwrap().iter().map(size).collect();
        let factors: Vec<Option<f64>> = case["factors"].as_array().unwrap().iter().map(|f| f.as_f64()).collect();
        let view = View {
            region: Rect { top: b[0], left: b[1], height: b[2], width: b[3] },
            scaled: (side, side),
            window: Rect::whole(side, side),
        };
        let jitter = Jitter { order: order.try_into().unwrap(), factors: factors.try_into().unwrap() };
        let draw = Draw {
            view: Some(view),
            top: 0,
            left: 0,
            flip: case["flip"].as_bool().unwrap(),
            jitter: Some(jitter),
            cutout: None,
        };
        let augment = Augment {
            random_resized_crop: Some(RandomResizedCrop { size: side, ..RandomResizedCrop::default() }),
            ..Augment::none()
        };
        (Transform { augment, view: CenterView::default() }, draw)
    }

    #[test]
    fn rendering_matches_torchvision() {
        let (tensors, doc) = fixture();
        let cases = doc["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 9);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let pixels = &tensors[&format!("image.{}", case["image"].as_str().unwrap())];
            let [h, w, c] = <[i64; 3]>::try_from(pixels.size()).unwrap().map(|d| d as usize);
            let image =
                Image { height: h, width: w, channels: c, data: Vec::<u8>::try_from(pixels.flatten(0, -1)).unwrap() };
            let norm = Normalization {
                mean: floats(&case["mean"]).iter().map(|&v| v as f32).collect(),
                std: floats(&case["std"]).iter().map(|&v| v as f32).collect(),
            };
            let expected = Vec::<f32>::try_from(tensors[name].flatten(0, -1)).unwrap();
            let (transform, draw) = case_draw(case, (h, w));
            let shape: Vec<usize> = case["shape"].as_array().unwrap().iter().map(size).collect();
            assert_eq!(transform.output_size(h, w).unwrap(), (shape[1], shape[2]), "{name}");
            let mut out = vec![0f32; expected.len()];
            transform.render(&image, &norm, &draw, &mut out).unwrap();
            let worst = out.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= TORCHVISION_TOLERANCE, "{name}: {worst} from torchvision");
        }
    }

    /// Python's `round`: half-way cases to the even neighbour.
    fn python_round(x: f64) -> usize {
        let floor = x.floor();
        let rest = x - floor;
        let up = rest > 0.5 || (rest == 0.5 && floor % 2.0 == 1.0);
        (floor + f64::from(u8::from(up))) as usize
    }

    /// torchvision's `RandomResizedCrop.get_params`, statement by statement, with `uniform_` and `randint` taken from
    /// `rng` (in the order torchvision draws them). Returns (i, j, h, w).
    fn get_params(height: usize, width: usize, scale: [f64; 2], ratio: [f64; 2], rng: &mut ChaCha8Rng) -> [usize; 4] {
        let area = (height * width) as f64;
        let log_ratio = [ratio[0].ln(), ratio[1].ln()];
        for _ in 0..10 {
            let target_area = area * (scale[0] + (scale[1] - scale[0]) * rng.gen::<f64>());
            let aspect_ratio = (log_ratio[0] + (log_ratio[1] - log_ratio[0]) * rng.gen::<f64>()).exp();
            let w = python_round((target_area * aspect_ratio).sqrt());
            let h = python_round((target_area / aspect_ratio).sqrt());
            if 0 < w && w <= width && 0 < h && h <= height {
                let i = rng.gen_range(0..height - h + 1);
                let j = rng.gen_range(0..width - w + 1);
                return [i, j, h, w];
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (min, max) = (ratio[0].min(ratio[1]), ratio[0].max(ratio[1]));
        let (w, h) = if in_ratio < min {
            (width, python_round(width as f64 / min))
        } else if in_ratio > max {
            (python_round(height as f64 * max), height)
        } else {
            (width, height)
        };
        [(height - h) / 2, (width - w) / 2, h, w]
    }

    #[test]
    fn random_resized_crop_is_torchvisions_algorithm() {
        let shapes = [(375, 500), (32, 32), (1, 1), (1, 300), (300, 1), (10, 200), (7, 5)];
        let params = [([0.08, 1.0], [0.75, 4.0 / 3.0]), ([1.0, 1.0], [1.0, 1.0]), ([0.5, 2.0], [0.2, 5.0])];
        let mut fallbacks = 0;
        for (height, width) in shapes {
            for (scale, ratio) in params {
                let rrc = RandomResizedCrop { size: 9, scale, ratio };
                for seed in 0..400 {
                    let got = rrc.region(height, width, &mut ChaCha8Rng::seed_from_u64(seed));
                    let want = get_params(height, width, scale, ratio, &mut ChaCha8Rng::seed_from_u64(seed));
                    assert_eq!(
                        [got.top, got.left, got.height, got.width],
                        want,
                        "{height}×{width} {scale:?} {ratio:?}"
                    );
                    assert!(
                        got.top + got.height <= height
                            && got.left + got.width <= width
                            && got.height > 0
                            && got.width > 0
                    );
                    fallbacks += usize::from(got.height * got.width == height * width || height == 10);
                }
            }
        }
        assert!(fallbacks > 1000, "the fallback is exercised");
    }

    #[test]
    fn random_resized_crop_statistics_match_torchvision() {
        let (_, doc) = fixture();
        for entry in doc["sampling"].as_array().unwrap() {
            let (height, width) = (size(&entry["height"]), size(&entry["width"]));
            let rrc = RandomResizedCrop {
                size: 8,
                scale: floats(&entry["scale"]).try_into().unwrap(),
                ratio: floats(&entry["ratio"]).try_into().unwrap(),
            };
            let draws = 100_000;
            let mut rng = ChaCha8Rng::seed_from_u64(height as u64 * 1000 + width as u64);
            let boxes: Vec<Rect> = (0..draws).map(|_| rrc.region(height, width, &mut rng)).collect();
            let column = |name: &str, r: &Rect| -> f64 {
                match name {
                    "top" => r.top as f64,
                    "left" => r.left as f64,
                    "height" => r.height as f64,
                    "width" => r.width as f64,
                    "log_aspect" => (r.width as f64 / r.height as f64).ln(),
                    _ => (r.height * r.width) as f64 / (height * width) as f64,
                }
            };
            for name in ["top", "left", "height", "width", "log_aspect", "area"] {
                let values: Vec<f64> = boxes.iter().map(|r| column(name, r)).collect();
                let mean = values.iter().sum::<f64>() / draws as f64;
                let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / draws as f64;
                let (theirs, their_std) = (entry["mean"][name].as_f64().unwrap(), entry["std"][name].as_f64().unwrap());
                let n_theirs = entry["draws"].as_f64().unwrap();
                // Five standard errors of the difference of two independent sample means.
                let bound = 5.0 * (var / draws as f64 + their_std.powi(2) / n_theirs).sqrt() + 1e-12;
                assert!(
                    (mean - theirs).abs() <= bound,
                    "{height}×{width} {name}: mean {mean} here, {theirs} in torchvision (bound {bound})"
                );
            }
        }
    }

    #[test]
    fn color_jitter_draws_a_permutation_and_factors_in_range() {
        let j = ColorJitter { brightness: 0.4, contrast: 1.5, saturation: 0.0, hue: 0.2 };
        let mut orders = std::collections::HashSet::new();
        let (mut low, mut high) = (f64::MAX, f64::MIN);
        let mut mean = 0.0;
        for seed in 0..5000 {
            let d = j.draw(&mut ChaCha8Rng::seed_from_u64(seed));
            let mut sorted = d.order;
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3]);
            orders.insert(d.order);
            let [b, c, s, h] = d.factors;
            let (b, c, h) = (b.unwrap(), c.unwrap(), h.unwrap());
            assert!((0.6..1.4).contains(&b) && (0.0..2.5).contains(&c) && (-0.2..0.2).contains(&h));
            assert_eq!(s, None, "saturation 0 is off, as in torchvision");
            (low, high) = (low.min(b), high.max(b));
            mean += b / 5000.0;
        }
        assert_eq!(orders.len(), 24, "every order of the four adjustments occurs");
        assert!(low < 0.61 && high > 1.39 && (mean - 1.0).abs() < 0.01, "brightness in [{low}, {high}], mean {mean}");
    }

    #[test]
    fn settings_are_checked_by_field_name() {
        let bad = |a: Augment| format!("{}", a.validate().unwrap_err());
        let rrc = RandomResizedCrop::default();
        assert!(Augment { random_resized_crop: Some(rrc), ..Augment::none() }.validate().is_ok());
        let err = bad(Augment { random_resized_crop: Some(RandomResizedCrop { size: 0, ..rrc }), ..Augment::none() });
        assert!(err.contains("random_resized_crop.size"), "{err}");
        let err = bad(Augment {
            random_resized_crop: Some(RandomResizedCrop { scale: [0.5, 0.1], ..rrc }),
            ..Augment::none()
        });
        assert!(err.contains("random_resized_crop.scale"), "{err}");
        let err = bad(Augment {
            random_resized_crop: Some(RandomResizedCrop { ratio: [0.0, 1.0], ..rrc }),
            ..Augment::none()
        });
        assert!(err.contains("random_resized_crop.ratio"), "{err}");
        let jitter = ColorJitter { hue: 0.6, ..ColorJitter::default() };
        let err = bad(Augment { color_jitter: Some(jitter), ..Augment::none() });
        assert!(err.contains("color_jitter.hue"), "{err}");
        let jitter = ColorJitter { contrast: -1.0, ..ColorJitter::default() };
        assert!(bad(Augment { color_jitter: Some(jitter), ..Augment::none() }).contains("color_jitter.contrast"));
        let err = format!("{}", CenterView { resize: 32, crop: 40 }.validate().unwrap_err());
        assert!(err.contains("data.crop (40)") && err.contains("data.resize (32)"), "{err}");
        assert!(CenterView { resize: 0, crop: 40 }.validate().is_ok());

        let toml = "crop_padding = 0\nhflip = true\n[random_resized_crop]\nsize = 64\n[color_jitter]\nhue = 0.1\n";
        let a: Augment = toml::from_str(toml).unwrap();
        assert_eq!(a.random_resized_crop, Some(RandomResizedCrop { size: 64, ..rrc }));
        assert_eq!(a.color_jitter, Some(ColorJitter { hue: 0.1, ..ColorJitter::default() }));
        assert_eq!(toml::from_str::<Augment>(&toml::to_string(&a).unwrap()).unwrap(), a);
        assert!(toml::from_str::<Augment>("[random_resized_crop]\nsise = 3\n").is_err(), "unknown keys are refused");
    }
}
