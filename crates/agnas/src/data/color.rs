//! torchvision's colour adjustments on float images (`adjust_brightness`, `_contrast`, `_saturation`, `_hue` of
//! `_functional_tensor.py`), with their f32 arithmetic, on HWC pixels in [0, 1].

/// `_blend`: ratio·a + (1 − ratio)·b, clamped to [0, 1]; torch casts both coefficients to f32.
fn blend(a: f32, b: f32, ratio: f64) -> f32 {
    (ratio as f32 * a + (1.0 - ratio) as f32 * b).clamp(0.0, 1.0)
}

/// `rgb_to_grayscale`: ITU-R 601 luma with torchvision's coefficients.
fn gray(px: &[f32]) -> f32 {
    0.2989f32 * px[0] + 0.587f32 * px[1] + 0.114f32 * px[2]
}

pub(crate) fn brightness(pixels: &mut [f32], factor: f64) {
    for v in pixels {
        *v = blend(*v, 0.0, factor);
    }
}

/// Blends towards the mean grey level of the whole image (of the single channel of a grey image).
pub(crate) fn contrast(pixels: &mut [f32], channels: usize, factor: f64) {
    let sum: f64 = if channels == 3 {
        pixels.chunks_exact(3).map(|px| f64::from(gray(px))).sum()
    } else {
        pixels.iter().map(|&v| f64::from(v)).sum()
    };
    let mean = (sum / (pixels.len() / channels).max(1) as f64) as f32;
    for v in pixels {
        *v = blend(*v, mean, factor);
    }
}

/// Blends each pixel towards its own grey level; grey images are left as they are, as in torchvision.
pub(crate) fn saturation(pixels: &mut [f32], channels: usize, factor: f64) {
    if channels != 3 {
        return;
    }
    for px in pixels.chunks_exact_mut(3) {
        let g = gray(px);
        for v in px {
            *v = blend(*v, g, factor);
        }
    }
}

/// Rotates the hue by `factor` turns (in [−0.5, 0.5]) through HSV; grey images are left as they are.
pub(crate) fn hue(pixels: &mut [f32], channels: usize, factor: f64) {
    if channels != 3 {
        return;
    }
    for px in pixels.chunks_exact_mut(3) {
        let (h, s, v) = rgb_to_hsv(px[0], px[1], px[2]);
        px.copy_from_slice(&hsv_to_rgb(remainder_one(h + factor as f32), s, v));
    }
}

/// `torch.fmod(x, 1.0)` for |x| < 2³¹: x minus its integer part, which is exact in floating point. The cast truncates
/// in one instruction, where `%` and `floor` on f32 call libm (a fifth of the training transform's time).
fn fraction(x: f32) -> f32 {
    x - (x as i32) as f32
}

/// `torch.remainder(x, 1.0)`: fmod, moved into [0, 1) for negative x.
fn remainder_one(x: f32) -> f32 {
    let m = fraction(x);
    if m < 0.0 {
        m + 1.0
    } else {
        m
    }
}

/// `_rgb2hsv`, term by term (a grey pixel gets hue 0 and saturation 0 without a division by zero).
fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let grey = max == min;
    let range = max - min;
    let s = range / if grey { 1.0 } else { max };
    let divisor = if grey { 1.0 } else { range };
    let (rc, gc, bc) = ((max - r) / divisor, (max - g) / divisor, (max - b) / divisor);
    let hr = if max == r { bc - gc } else { 0.0 };
    let hg = if max == g && max != r { 2.0 + rc - bc } else { 0.0 };
    let hb = if max != g && max != r { 4.0 + gc - rc } else { 0.0 };
    let h = fraction((hr + hg + hb) / 6.0 + 1.0);
    (h, s, max)
}

/// `_hsv2rgb`: the sector of the hue picks which of v, p, q, t each channel is.
fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    // h is in [0, 1], so truncating is `floor`.
    let sector = (h * 6.0) as i32;
    let f = h * 6.0 - sector as f32;
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    match sector.rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_fmod_and_remainder() {
        for x in [0.0f32, 0.25, 0.999_999_9, 1.0, 1.833_333_4, 1.5, -0.25, -0.5, -0.999_999_9, -1e-9, 1e-9, 7.75] {
            assert_eq!(fraction(x), x % 1.0, "fmod({x}, 1)");
            let r = remainder_one(x);
            assert!((0.0..=1.0).contains(&r) && (r - x - (r - x).round()).abs() < 1e-6, "remainder({x}, 1) = {r}");
        }
        assert_eq!(remainder_one(-0.25), 0.75);
    }

    #[test]
    fn hsv_round_trip_and_known_hues() {
        for &(r, g, b) in &[(0.9, 0.2, 0.1), (0.1, 0.8, 0.3), (0.2, 0.3, 0.7), (0.5, 0.5, 0.5), (0.0, 0.0, 0.0)] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let back = hsv_to_rgb(h, s, v);
            for (x, y) in back.iter().zip([r, g, b]) {
                assert!((x - y).abs() < 1e-6, "({r}, {g}, {b}) → ({h}, {s}, {v}) → {back:?}");
            }
        }
        assert_eq!(rgb_to_hsv(1.0, 0.0, 0.0), (0.0, 1.0, 1.0));
        assert!((rgb_to_hsv(0.0, 1.0, 0.0).0 - 1.0 / 3.0).abs() < 1e-7);
        assert!((rgb_to_hsv(0.0, 0.0, 0.5).0 - 2.0 / 3.0).abs() < 1e-7);
        // A third of a turn takes red to green, and −0.5 takes it to cyan.
        let mut px = [1.0, 0.0, 0.0];
        hue(&mut px, 3, 1.0 / 3.0);
        assert!(px[1] > 0.999 && px[0] < 1e-6 && px[2] < 1e-6, "{px:?}");
        let mut px = [1.0, 0.0, 0.0];
        hue(&mut px, 3, -0.5);
        assert!(px[0] < 1e-6 && px[1] > 0.999 && px[2] > 0.999, "{px:?}");
    }

    #[test]
    fn blends_towards_black_mean_and_grey() {
        let mut px = vec![0.5, 0.25, 1.0, 0.0, 0.5, 0.75];
        brightness(&mut px, 1.5);
        assert_eq!(px, [0.75, 0.375, 1.0, 0.0, 0.75, 1.0], "scaled and clamped");

        let mut px = vec![0.2, 0.2, 0.2, 0.6, 0.6, 0.6];
        contrast(&mut px, 3, 0.0);
        // torchvision's luma weights add up to 0.9999.
        for v in &px {
            assert!((v - 0.4 * 0.9999).abs() < 1e-6, "contrast 0 is the mean grey: {px:?}");
        }
        let mut px = vec![0.2, 0.6];
        contrast(&mut px, 1, 2.0);
        assert!((px[0] - 0.0).abs() < 1e-6 && (px[1] - 0.8).abs() < 1e-6, "{px:?}");

        let mut px = vec![1.0, 0.0, 0.0];
        saturation(&mut px, 3, 0.0);
        assert!(px.iter().all(|&v| (v - 0.2989).abs() < 1e-6), "saturation 0 is grey: {px:?}");
        let mut grey = vec![0.3, 0.7];
        saturation(&mut grey, 1, 0.0);
        hue(&mut grey, 1, 0.3);
        assert_eq!(grey, [0.3, 0.7], "one-channel images keep their values");
    }
}
