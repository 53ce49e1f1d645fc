//! Training augmentation of one image, as torchvision's `RandomCrop(size, padding)` + `RandomHorizontalFlip()` +
//! `ToTensor()` + `Normalize(mean, std)` followed by the DARTS `Cutout(length)`.
use super::{Image, Normalization};
use anyhow::{ensure, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which augmentations run; all off by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Zero padding on every side before a random crop back to the original size (0 = no crop).
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
    /// Side of the square zeroed after normalisation (0 = no cutout).
    pub cutout: usize,
}

/// The random choices for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Draw {
    /// Offset of the crop in the padded image; `crop_padding` means no shift.
    top: usize,
    left: usize,
    flip: bool,
    /// Centre (row, column) of the cutout square.
    cutout: Option<(usize, usize)>,
}

impl Augment {
    pub fn none() -> Self {
        Augment::default()
    }

    /// Draws in torchvision's order: crop row, crop column, flip, then cutout row and column.
    fn draw(&self, height: usize, width: usize, rng: &mut ChaCha8Rng) -> Draw {
        let p = self.crop_padding;
        let (top, left) = if p > 0 { (rng.gen_range(0..=2 * p), rng.gen_range(0..=2 * p)) } else { (0, 0) };
        let flip = self.hflip && rng.gen_bool(0.5);
        let cutout = (self.cutout > 0).then(|| (rng.gen_range(0..height), rng.gen_range(0..width)));
        Draw { top, left, flip, cutout }
    }

    /// Writes the augmented, normalised image into `out` as CHW f32 (`out.len()` = C·H·W).
    pub fn apply(&self, image: &Image, norm: &Normalization, rng: &mut ChaCha8Rng, out: &mut [f32]) -> Result<()> {
        let draw = self.draw(image.height, image.width, rng);
        self.render(image, norm, draw, out)
    }

    fn render(&self, image: &Image, norm: &Normalization, draw: Draw, out: &mut [f32]) -> Result<()> {
        let (h, w, c) = (image.height, image.width, image.channels);
        ensure!(h > 0 && w > 0 && c > 0, "cannot augment an empty {h}×{w}×{c} image");
        ensure!(image.data.len() == h * w * c, "image data holds {} bytes, not {h}×{w}×{c}", image.data.len());
        ensure!(
            norm.mean.len() == c && norm.std.len() == c,
            "the normalisation has {} means and {} stds for {c}-channel images",
            norm.mean.len(),
            norm.std.len()
        );
        ensure!(out.len() == h * w * c, "output holds {} values, not {c}×{h}×{w}", out.len());
        let p = self.crop_padding as isize;
        for (ch, plane) in out.chunks_exact_mut(h * w).enumerate() {
            // Every u8 value normalised once, with ToTensor's and Normalize's f32 arithmetic.
            let mut table = [0f32; 256];
            for (v, t) in table.iter_mut().enumerate() {
                *t = (v as f32 / 255.0 - norm.mean[ch]) / norm.std[ch];
            }
            for (y, row) in plane.chunks_exact_mut(w).enumerate() {
                let sy = y as isize + draw.top as isize - p;
                for (x, value) in row.iter_mut().enumerate() {
                    let cx = if draw.flip { w - 1 - x } else { x };
                    let sx = cx as isize + draw.left as isize - p;
                    // Padding is black in u8 space, so it normalises like a 0 pixel.
                    let byte = if (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx) {
                        image.data[(sy as usize * w + sx as usize) * c + ch]
                    } else {
                        0
                    };
                    *value = table[byte as usize];
                }
            }
        }
        if let Some((cy, cx)) = draw.cutout {
            let half = self.cutout / 2;
            let (y0, y1) = (cy.saturating_sub(half), (cy + half).min(h));
            let (x0, x1) = (cx.saturating_sub(half), (cx + half).min(w));
            for plane in out.chunks_exact_mut(h * w) {
                for row in plane.chunks_exact_mut(w).take(y1).skip(y0) {
                    row[x0..x1].fill(0.0);
                }
            }
        }
        Ok(())
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

    /// Literal torchvision: pad a copy with zeros, cut the window, mirror it, normalise, then cut out.
    fn reference(aug: &Augment, img: &Image, norm: &Normalization, d: Draw) -> Vec<f32> {
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
        let aug = Augment { crop_padding: 1, hflip: false, cutout: 0 };
        let mut out = vec![0f32; 6];
        let draw = Draw { top: 0, left: 2, flip: false, cutout: None };
        aug.render(&img, &identity(1), draw, &mut out).unwrap();
        let expect: Vec<f32> = [0, 0, 0, 20, 30, 0].iter().map(|&v| v as f32 / 255.0).collect();
        assert_eq!(out, expect);
        // The centred window is the image itself.
        aug.render(&img, &identity(1), Draw { top: 1, left: 1, ..draw }, &mut out).unwrap();
        assert_eq!(out, img.data.iter().map(|&v| v as f32 / 255.0).collect::<Vec<_>>());
        // Flip after the crop: the row of the shifted window read backwards.
        aug.render(&img, &identity(1), Draw { top: 1, left: 2, flip: true, cutout: None }, &mut out).unwrap();
        let expect: Vec<f32> = [0, 30, 20, 0, 60, 50].iter().map(|&v| v as f32 / 255.0).collect();
        assert_eq!(out, expect);
    }

    #[test]
    fn padding_is_zero_before_normalisation() {
        let img = Image { height: 1, width: 1, channels: 2, data: vec![255, 255] };
        let norm = Normalization { mean: vec![0.5, 0.25], std: vec![0.5, 0.25] };
        let aug = Augment { crop_padding: 1, hflip: false, cutout: 0 };
        let mut out = vec![0f32; 2];
        aug.render(&img, &norm, Draw { top: 0, left: 0, flip: false, cutout: None }, &mut out).unwrap();
        assert_eq!(out, vec![-1.0, -1.0], "padding must normalise like a black pixel");
        aug.render(&img, &norm, Draw { top: 1, left: 1, flip: false, cutout: None }, &mut out).unwrap();
        assert_eq!(out, vec![1.0, 3.0]);
    }

    #[test]
    fn cutout_is_clipped_and_zero_after_normalisation() {
        let img = image(5, 6, 2);
        let norm = Normalization { mean: vec![0.9, 0.9], std: vec![0.1, 0.1] };
        let aug = Augment { crop_padding: 0, hflip: false, cutout: 4 };
        let mut out = vec![0f32; 60];
        aug.render(&img, &norm, Draw { top: 0, left: 0, flip: false, cutout: Some((0, 5)) }, &mut out).unwrap();
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
        let aug = Augment { crop_padding: 3, hflip: true, cutout: 4 };
        let mut seen_flips = [false; 2];
        let mut corners = [false; 2];
        for seed in 0..300 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let draw = aug.draw(8, 7, &mut rng);
            assert!(draw.top <= 6 && draw.left <= 6);
            seen_flips[draw.flip as usize] = true;
            corners[0] |= draw.top == 0 && draw.left == 0;
            corners[1] |= draw.top == 6 && draw.left == 6;
            let mut out = vec![0f32; 8 * 7 * 3];
            aug.apply(&img, &norm, &mut ChaCha8Rng::seed_from_u64(seed), &mut out).unwrap();
            assert_eq!(out, reference(&aug, &img, &norm, draw), "seed {seed}: {draw:?}");
        }
        assert_eq!(seen_flips, [true, true]);
        assert_eq!(corners, [true, true], "crop offsets must reach both extremes");
    }

    #[test]
    fn no_augmentation_is_plain_normalisation() {
        let img = image(3, 2, 3);
        let norm = Normalization::cifar10();
        let mut out = vec![0f32; 18];
        Augment::none().apply(&img, &norm, &mut ChaCha8Rng::seed_from_u64(0), &mut out).unwrap();
        for k in 0..3 {
            for i in 0..6 {
                let v = (img.data[i * 3 + k] as f32 / 255.0 - norm.mean[k]) / norm.std[k];
                assert_eq!(out[k * 6 + i], v);
            }
        }
        let err = Augment::none().apply(&img, &identity(1), &mut ChaCha8Rng::seed_from_u64(0), &mut out);
        assert!(format!("{}", err.unwrap_err()).contains("3-channel"));
        let json = serde_json::to_string(&Augment { crop_padding: 4, hflip: true, cutout: 16 }).unwrap();
        assert_eq!(json, r#"{"crop_padding":4,"hflip":true,"cutout":16}"#);
    }
}
