//! Antialiased bilinear resampling of a region of an image, as torch's `interpolate(mode="bilinear",
//! align_corners=False, antialias=True)`, which torchvision's tensor `resize` calls: a triangle filter, widened by
//! the scale factor when shrinking so that every input pixel contributes (the filter PIL's bilinear resize uses).
use super::Image;

/// A rectangle of pixels: rows `top..top + height`, columns `left..left + width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

impl Rect {
    pub fn whole(height: usize, width: usize) -> Self {
        Rect { top: 0, left: 0, height, width }
    }
}

/// u8 → [0, 1] with ToTensor's f32 division.
const UNIT: [f32; 256] = {
    let mut table = [0f32; 256];
    let mut v = 0;
    while v < 256 {
        table[v] = v as f32 / 255.0;
        v += 1;
    }
    table
};

pub(crate) fn unit(v: u8) -> f32 {
    UNIT[v as usize]
}

/// How one output axis reads its input axis: output k is Σ_j `weights[k·stride + j]` · input[`first[k]` + j] for
/// j < `count[k]`.
struct Taps {
    first: Vec<usize>,
    count: Vec<usize>,
    weights: Vec<f32>,
    stride: usize,
}

impl Taps {
    /// Outputs `window_start..window_start + window_len` of an axis of `input` pixels scaled to `scaled` pixels,
    /// with torch's `_compute_indices_min_size_weights_aa`.
    fn new(input: usize, scaled: usize, window_start: usize, window_len: usize) -> Self {
        let scale = input as f64 / scaled as f64;
        let (support, inv_scale) = if scale >= 1.0 { (scale, 1.0 / scale) } else { (1.0, 1.0) };
        let stride = support.ceil() as usize * 2 + 1;
        let mut taps = Taps { first: Vec::new(), count: Vec::new(), weights: vec![0.0; window_len * stride], stride };
        for (k, row) in taps.weights.chunks_exact_mut(stride).enumerate() {
            let center = scale * ((window_start + k) as f64 + 0.5);
            // C's truncating casts, as torch computes the window.
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(input as i64).max(lo as i64) as usize;
            let count = (hi - lo).min(stride);
            let raw: Vec<f64> = (0..count)
                .map(|j| ((j + lo) as f64 - center + 0.5) * inv_scale)
                .map(|x| (1.0 - x.abs()).max(0.0))
                .collect();
            let total: f64 = raw.iter().sum();
            if total != 0.0 {
                for (w, r) in row.iter_mut().zip(&raw) {
                    *w = (r / total) as f32;
                }
            }
            taps.first.push(lo);
            taps.count.push(count);
        }
        taps
    }

    fn get(&self, k: usize) -> (usize, &[f32]) {
        (self.first[k], &self.weights[k * self.stride..][..self.count[k]])
    }

    /// The input positions any output reads.
    fn span(&self) -> std::ops::Range<usize> {
        let end = self.first.iter().zip(&self.count).map(|(f, c)| f + c).max().unwrap_or(0);
        self.first.first().copied().unwrap_or(0)..end
    }
}

/// Scales `region` of `image` to `scaled` (height, width) and writes the `window` of the result (inside `scaled`) to
/// `out` as HWC f32 in [0, 1]. Rows are resampled first, then columns, in one pass each; `temp` holds the rows.
pub(crate) fn resample(
    image: &Image,
    region: Rect,
    scaled: (usize, usize),
    window: Rect,
    temp: &mut Vec<f32>,
    out: &mut Vec<f32>,
) {
    let c = image.channels;
    let rows = Taps::new(region.height, scaled.0, window.top, window.height);
    let cols = Taps::new(region.width, scaled.1, window.left, window.width);
    let needed = rows.span();
    let line = window.width * c;
    temp.clear();
    temp.resize(needed.len() * line, 0.0);
    for (y, dst) in needed.clone().zip(temp.chunks_exact_mut(line)) {
        let start = ((region.top + y) * image.width + region.left) * c;
        let src = &image.data[start..start + region.width * c];
        for (x, px) in dst.chunks_exact_mut(c).enumerate() {
            let (first, weights) = cols.get(x);
            for (j, &w) in weights.iter().enumerate() {
                let from = &src[(first + j) * c..][..c];
                for (acc, &v) in px.iter_mut().zip(from) {
                    *acc += w * unit(v);
                }
            }
        }
    }
    out.clear();
    out.resize(window.height * line, 0.0);
    for (y, dst) in out.chunks_exact_mut(line).enumerate() {
        let (first, weights) = rows.get(y);
        for (j, &w) in weights.iter().enumerate() {
            let src = &temp[(first + j - needed.start) * line..][..line];
            for (acc, &v) in dst.iter_mut().zip(src) {
                *acc += w * v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(h: usize, w: usize, c: usize) -> Image {
        let data = (0..h * w * c).map(|v| (v * 37 % 256) as u8).collect();
        Image { height: h, width: w, channels: c, data }
    }

    /// The value at output (y, x) written out as the separable sum with weights from the filter directly.
    fn reference(img: &Image, region: Rect, scaled: (usize, usize), y: usize, x: usize, ch: usize) -> f32 {
        let axis = |input: usize, out: usize, k: usize| -> Vec<(usize, f64)> {
            let scale = input as f64 / out as f64;
            let stretch = scale.max(1.0);
            let center = scale * (k as f64 + 0.5) - 0.5;
            let w: Vec<(usize, f64)> = (0..input)
                .map(|j| (j, (1.0 - ((j as f64 - center) / stretch).abs()).max(0.0)))
                .filter(|(_, w)| *w > 0.0)
                .collect();
            let total: f64 = w.iter().map(|p| p.1).sum();
            w.into_iter().map(|(j, v)| (j, v / total)).collect()
        };
        let mut sum = 0.0;
        for (r, wr) in axis(region.height, scaled.0, y) {
            for (q, wq) in axis(region.width, scaled.1, x) {
                let v = img.data[((region.top + r) * img.width + region.left + q) * img.channels + ch];
                sum += wr * wq * v as f64 / 255.0;
            }
        }
        sum as f32
    }

    #[test]
    fn matches_the_filter_written_out_when_shrinking_and_enlarging() {
        let img = image(23, 31, 3);
        let region = Rect { top: 2, left: 5, height: 19, width: 24 };
        for scaled in [(7, 5), (19, 24), (40, 50), (8, 33)] {
            let (mut temp, mut out) = (Vec::new(), Vec::new());
            resample(&img, region, scaled, Rect::whole(scaled.0, scaled.1), &mut temp, &mut out);
            assert_eq!(out.len(), scaled.0 * scaled.1 * 3);
            for y in 0..scaled.0 {
                for x in 0..scaled.1 {
                    for ch in 0..3 {
                        let got = out[(y * scaled.1 + x) * 3 + ch];
                        let want = reference(&img, region, scaled, y, x, ch);
                        assert!((got - want).abs() < 2e-6, "{scaled:?} at ({y}, {x}, {ch}): {got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_same_size_is_the_image_itself_and_a_window_is_part_of_the_whole() {
        let img = image(9, 6, 1);
        let (mut temp, mut out) = (Vec::new(), Vec::new());
        resample(&img, Rect::whole(9, 6), (9, 6), Rect::whole(9, 6), &mut temp, &mut out);
        assert_eq!(out, img.data.iter().map(|&v| unit(v)).collect::<Vec<_>>());

        let mut whole = Vec::new();
        resample(&img, Rect::whole(9, 6), (13, 4), Rect::whole(13, 4), &mut temp, &mut whole);
        let window = Rect { top: 3, left: 1, height: 7, width: 2 };
        resample(&img, Rect::whole(9, 6), (13, 4), window, &mut temp, &mut out);
        for y in 0..7 {
            assert_eq!(out[y * 2..y * 2 + 2], whole[(y + 3) * 4 + 1..(y + 3) * 4 + 3], "row {y}");
        }
    }
}
