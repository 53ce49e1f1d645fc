//! Pictures of the macro space: the architecture as a column of blocks, and each layer's attention as bars.
use super::arch::{self, Arch, LayerShape, MbConvKind, MAX_CANDIDATES};
use crate::report::svg::{self, Svg};

const MARGIN: f64 = 20.0;
const ROW: f64 = 26.0;
const HEADER: f64 = 48.0;
const FONT: f64 = 11.0;
/// Width of a block box per unit of expansion (e3 boxes are half as wide as e6 ones).
const PER_EXPANSION: f64 = 26.0;

/// Kernel 3, 5, 7 in three steps of the report colour map, so that the kernel reads at a glance.
fn kernel_colour(kernel: i64) -> String {
    svg::colormap(match kernel {
        3 => 0.25,
        5 => 0.55,
        _ => 0.85,
    })
}

/// One row per layer, top to bottom: the block drawn as wide as its expansion and coloured by its kernel (a
/// skipped layer dashed), then its channels, input resolution and stride; stem and head framed above and below.
/// `shapes` are the layers at the width and input size the picture describes.
pub fn arch_svg(arch: &Arch, shapes: &[LayerShape], title: &str) -> String {
    let label_w = 64.0;
    let box_max = 6.0 * PER_EXPANSION;
    let first = shapes[0];
    let stem = format!("conv 3×3 s2, MB e1 k3 → {} ch", first.inp);
    let head = format!("conv 1×1 → {} ch, pool, classifier", arch::head_channels(1.0));
    let facts: Vec<String> =
        shapes.iter().map(|s| format!("{}→{} ch, {}×{}{}", s.inp, s.oup, s.size, s.size, stride_note(s))).collect();
    let legend = "box width: expansion (3 or 6); colour: kernel 3, 5, 7 (dark to light); dashed: skipped";
    let facts_w = facts.iter().chain([&stem, &head]).map(|f| svg::text_width(f, FONT, false)).fold(0.0, f64::max);
    let width = (label_w + box_max + 12.0 + facts_w)
        .max(svg::text_width(title, 15.0, true))
        .max(svg::text_width(legend, 10.0, false))
        + 2.0 * MARGIN;
    let rows = arch::LAYERS + 2;
    let height = HEADER + rows as f64 * ROW + 40.0 + MARGIN;
    let mut pic = Svg::new(width, height);
    pic.add(svg::text(MARGIN, 28.0, 15.0, title).attr("font-weight", "bold").attr("class", "title"));
    let x_box = MARGIN + label_w;
    let x_facts = x_box + box_max + 12.0;
    let mut y = HEADER;
    let fixed = |pic: &mut Svg, y: f64, name: &str, facts: &str| {
        pic.add(svg::text(MARGIN, y + 16.0, FONT, name).attr("class", "layer-label"));
        pic.add(svg::rect(x_box, y + 3.0, box_max, ROW - 6.0).attr("fill", "#e8e8e8").attr("stroke", "#888"));
        pic.add(svg::text(x_facts, y + 16.0, FONT, facts));
    };
    fixed(&mut pic, y, "stem", &stem);
    y += ROW;
    for (l, (res, choice)) in facts.iter().zip(arch.0).enumerate() {
        pic.add(svg::text(MARGIN, y + 16.0, FONT, &format!("layer {l}")).attr("class", "layer-label"));
        match choice {
            Some(id) => {
                let kind = MbConvKind::of(id as usize);
                let w = kind.expand as f64 * PER_EXPANSION;
                pic.add(
                    svg::rect(x_box, y + 3.0, w, ROW - 6.0)
                        .attr("fill", &kernel_colour(kind.kernel))
                        .attr("stroke", "#333")
                        .attr("class", "block"),
                );
                let label = format!("MB {}", kind.label());
                pic.add(svg::text(x_box + 5.0, y + 16.0, FONT, &label).attr("fill", "#ffffff"));
            }
            None => {
                pic.add(
                    svg::rect(x_box, y + 3.0, box_max, ROW - 6.0)
                        .attr("fill", "none")
                        .attr("stroke", "#999")
                        .attr("stroke-dasharray", "4 3")
                        .attr("class", "skip"),
                );
                pic.add(svg::text(x_box + 5.0, y + 16.0, FONT, "skip").attr("fill", "#777"));
            }
        }
        pic.add(svg::text(x_facts, y + 16.0, FONT, res));
        y += ROW;
    }
    fixed(&mut pic, y, "head", &head);
    y += ROW + 22.0;
    pic.add(svg::text(MARGIN, y, 10.0, legend).attr("fill", "#555"));
    pic.finish()
}

fn stride_note(shape: &LayerShape) -> &'static str {
    if shape.stride == 2 {
        ", stride 2"
    } else {
        ""
    }
}

/// One row per layer: a bar per candidate as its share of the layer's attention, the chosen candidate dark, the
/// equal share (1/candidates) marked; the shares differ by little, so the axis spans the smallest to the largest
/// share over all layers.
pub fn attention_bars_svg(rows: &[Vec<f64>], chosen: &[usize], title: &str) -> String {
    let shares: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            let total: f64 = r.iter().sum();
            r.iter().map(|v| v / total).collect()
        })
        .collect();
    let all = shares.iter().flatten().copied();
    let (lo, hi) = all.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let lo = (lo - 0.1 * (hi - lo)).max(0.0);
    let span = (hi - lo).max(1e-9);
    let (bar_w, gap, plot_h) = (9.0, 2.0, ROW - 6.0);
    let label_w = 64.0;
    let group_w = MAX_CANDIDATES as f64 * (bar_w + gap) + 14.0;
    let legend = format!(
        "bar: share of the layer's attention, axis {:.1}–{:.1} %; dark: chosen; red: equal share",
        100.0 * lo,
        100.0 * hi
    );
    let width =
        (label_w + group_w + 150.0).max(svg::text_width(title, 15.0, true)).max(svg::text_width(&legend, 10.0, false))
            + 2.0 * MARGIN;
    // The candidates' names stand upright over their bars, which are narrower than a name.
    let names_h =
        (0..MAX_CANDIDATES).map(|k| svg::text_width(&arch::candidate_label(k), 8.0, false)).fold(0.0, f64::max);
    let top = HEADER + names_h;
    let height = top + 20.0 + rows.len() as f64 * ROW + 40.0;
    let mut pic = Svg::new(width, height);
    pic.add(svg::text(MARGIN, 28.0, 15.0, title).attr("font-weight", "bold").attr("class", "title"));
    let x0 = MARGIN + label_w;
    for k in 0..MAX_CANDIDATES {
        let (x, y) = (x0 + k as f64 * (bar_w + gap) + bar_w / 2.0 + 3.0, top + 12.0);
        let label = arch::candidate_label(k);
        let upright = format!("rotate(-90 {x} {y})");
        pic.add(svg::text(x, y, 8.0, &label).attr("transform", &upright).attr("class", "candidate"));
    }
    for (l, (row, &c)) in shares.iter().zip(chosen).enumerate() {
        let y = top + 20.0 + l as f64 * ROW;
        pic.add(svg::text(MARGIN, y + 15.0, FONT, &format!("layer {l}")).attr("class", "layer-label"));
        for (k, &s) in row.iter().enumerate() {
            let h = plot_h * (s - lo) / span;
            let fill = if k == c { "#333333".to_string() } else { svg::colormap(0.45) };
            let x = x0 + k as f64 * (bar_w + gap);
            pic.add(svg::rect(x, y + 3.0 + plot_h - h, bar_w, h).attr("fill", &fill).attr("class", "bar"));
        }
        let even = 1.0 / row.len() as f64;
        let ey = y + 3.0 + plot_h - plot_h * (even - lo) / span;
        let end = x0 + row.len() as f64 * (bar_w + gap);
        pic.add(svg::line(x0, ey, end, ey).attr("stroke", "#c0392b").attr("stroke-width", "1"));
        let label = format!("{} {:.1} %", arch::candidate_label(c), 100.0 * row[c]);
        pic.add(svg::text(x0 + group_w, y + 15.0, FONT, &label));
    }
    let y = top + 20.0 + rows.len() as f64 * ROW + 20.0;
    pic.add(svg::text(MARGIN, y, 10.0, &legend).attr("fill", "#555"));
    pic.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_draw_every_layer_and_bar() {
        let arch = Arch::parse(arch::AGNAS).unwrap();
        let shapes = arch::layer_shapes(1.0, 224);
        let svg = arch_svg(&arch, &shapes, "released");
        assert_eq!(svg.matches("class=\"block\"").count(), 16);
        assert_eq!(svg.matches("class=\"skip\"").count(), 5);
        assert!(svg.contains("56×56, stride 2") && svg.contains("MB k7e6"), "{svg}");
        let rows: Vec<Vec<f64>> =
            (0..arch::LAYERS).map(|l| vec![1.0; if arch::skippable(l) { 7 } else { 6 }]).collect();
        let bars = attention_bars_svg(&rows, &arch.slots(), "bars");
        assert_eq!(bars.matches("class=\"bar\"").count(), 15 * 7 + 6 * 6);
    }
}
