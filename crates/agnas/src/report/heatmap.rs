//! Heatmaps of accumulated attention: one panel per cell (or layer), a row per decision point, a column per candidate.
use super::svg::{self, El, Svg};

const MARGIN: f64 = 20.0;
const TITLE_SIZE: f64 = 15.0;
const HEAT_SQUARE: f64 = 18.0;
const HEAT_FONT: f64 = 10.0;
const NOTE_FONT: f64 = 11.0;
const NOTE_LINE: f64 = 15.0;
const PANELS_PER_ROW: usize = 4;
/// sin 45°: rotated column labels rise and reach right by this share of their length.
const DIAG: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// Small multiples of op importances, one panel per cell: `values[cell][edge][op]`, rows labelled with
/// `edge_labels`, columns with `op_names`, panels titled with `cell_titles` (missing labels are left blank, ragged
/// rows drawn as far as they go). Each square's colour places its value between the smallest (0) and the largest (1)
/// value of its row: summed sigmoid gates differ by a few per cent within an edge, so a ratio to the maximum would
/// paint every row the same; the strongest op other than `none` is dotted. `notes` are lines of text under the
/// legend (how sure the derivation is).
pub fn importance_heatmap_svg(
    values: &[Vec<Vec<f64>>],
    cell_titles: &[String],
    edge_labels: &[String],
    op_names: &[&str],
    title: &str,
    notes: &[String],
) -> String {
    let rows = values.iter().map(Vec::len).max().unwrap_or(0);
    let cols = values.iter().flatten().map(Vec::len).max().unwrap_or(0).max(op_names.len());
    let row_label_w = edge_labels.iter().map(|l| svg::text_width(l, HEAT_FONT, false)).fold(0.0, f64::max) + 6.0;
    let col_label_w = op_names.iter().map(|l| svg::text_width(l, HEAT_FONT, false)).fold(0.0, f64::max);
    let panel_title_w = cell_titles.iter().map(|l| svg::text_width(l, 11.0, true)).fold(0.0, f64::max);
    let col_label_h = col_label_w * DIAG + 10.0;
    let grid_w = cols as f64 * HEAT_SQUARE;
    let overhang = (col_label_w * DIAG - HEAT_SQUARE / 2.0).max(0.0);
    let panel_w = (row_label_w + grid_w + overhang).max(panel_title_w) + 24.0;
    let panel_h = 18.0 + col_label_h + rows as f64 * HEAT_SQUARE + 18.0;
    let per_row = values.len().clamp(1, PANELS_PER_ROW);
    let panel_rows = values.len().div_ceil(per_row);
    let header = 44.0;
    let legend_h = 58.0;
    let bar_w = 200.0;
    let caption = "colour: importance from the smallest (0) to the largest (1) of its row";
    let none_col = op_names.iter().position(|&n| n == "none");
    let dot_caption = match none_col {
        Some(_) => "dot: strongest op other than none",
        None => "dot: strongest candidate",
    };
    let width = (MARGIN * 2.0 + per_row as f64 * panel_w)
        .max(svg::text_width(title, TITLE_SIZE, true) + 2.0 * MARGIN)
        .max(MARGIN + bar_w + 14.0 + svg::text_width(caption, 11.0, false) + MARGIN);
    // Notes wrap to the picture the panels make, rather than one long warning widening it.
    let notes: Vec<String> = notes.iter().flat_map(|n| wrap(n, width - 2.0 * MARGIN)).collect();
    let height = header + panel_rows as f64 * panel_h + legend_h + notes.len() as f64 * NOTE_LINE + MARGIN;

    let mut pic = Svg::new(width, height);
    let stops: Vec<(f64, String)> = (0..=8).map(|i| (i as f64 / 8.0, svg::colormap(i as f64 / 8.0))).collect();
    pic.linear_gradient("colour-bar", &stops);
    pic.add(svg::text(MARGIN, 26.0, TITLE_SIZE, title).attr("font-weight", "bold").attr("class", "title"));

    for (c, cell) in values.iter().enumerate() {
        let x0 = MARGIN + (c % per_row) as f64 * panel_w;
        let y0 = header + (c / per_row) as f64 * panel_h;
        let gx = x0 + row_label_w;
        let gy = y0 + 18.0 + col_label_h;
        let cell_title = cell_titles.get(c).map(String::as_str).unwrap_or("");
        pic.add(svg::text(x0, y0 + 12.0, 11.0, cell_title).attr("font-weight", "bold").attr("class", "panel-title"));
        for (j, name) in op_names.iter().enumerate() {
            let (x, y) = (gx + (j as f64 + 0.5) * HEAT_SQUARE, gy - 4.0);
            let rotate = format!("rotate(-45 {} {})", svg::num(x), svg::num(y));
            pic.add(svg::text(x, y, HEAT_FONT, name).attr("transform", &rotate).attr("class", "col-label"));
        }
        for (r, row) in cell.iter().enumerate() {
            let y = gy + r as f64 * HEAT_SQUARE;
            let label = edge_labels.get(r).map(String::as_str).unwrap_or("");
            pic.add(
                svg::text(gx - 5.0, y + HEAT_SQUARE / 2.0 + HEAT_FONT * 0.35, HEAT_FONT, label)
                    .attr("text-anchor", "end")
                    .attr("class", "row-label"),
            );
            let max = row.iter().copied().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
            let min = row.iter().copied().filter(|v| v.is_finite()).fold(f64::INFINITY, f64::min);
            for (j, &v) in row.iter().enumerate() {
                let fill = match v.is_finite() {
                    true if max > min => svg::colormap((v - min) / (max - min)),
                    true => svg::colormap(1.0),
                    false => "#dddddd".into(),
                };
                let x = gx + j as f64 * HEAT_SQUARE;
                pic.add(
                    svg::rect(x + 0.5, y + 0.5, HEAT_SQUARE - 1.0, HEAT_SQUARE - 1.0)
                        .attr("class", "square")
                        .attr("fill", &fill)
                        .child(El::new("title").text(&format!("{label} {}: {v:.4}", op_names.get(j).unwrap_or(&"")))),
                );
            }
            let best = row.iter().enumerate().filter(|&(j, v)| Some(j) != none_col && v.is_finite()).fold(
                None,
                |best: Option<(usize, f64)>, (j, &v)| match best {
                    Some((_, b)) if b >= v => best,
                    _ => Some((j, v)),
                },
            );
            if let Some((j, _)) = best {
                let cx = gx + (j as f64 + 0.5) * HEAT_SQUARE;
                pic.add(
                    svg::circle(cx, y + HEAT_SQUARE / 2.0, 2.6)
                        .attr("class", "argmax")
                        .attr("fill", "#ffffff")
                        .attr("stroke", "#000000")
                        .num("stroke-width", 0.8),
                );
            }
        }
    }

    let ly = header + panel_rows as f64 * panel_h + 6.0;
    pic.add(
        svg::rect(MARGIN, ly, bar_w, 12.0)
            .attr("fill", "url(#colour-bar)")
            .attr("stroke", "#555555")
            .num("stroke-width", 0.6),
    );
    for (t, anchor) in [(0.0, "start"), (0.5, "middle"), (1.0, "end")] {
        let x = MARGIN + t * bar_w;
        pic.add(svg::line(x, ly + 12.0, x, ly + 15.0).attr("stroke", "#555555").num("stroke-width", 0.6));
        let label = svg::num(t);
        pic.add(svg::text(x, ly + 25.0, HEAT_FONT, &label).attr("text-anchor", anchor));
    }
    pic.add(svg::text(MARGIN + bar_w + 14.0, ly + 10.0, 11.0, caption));
    let dot_x = MARGIN + bar_w + 18.0;
    pic.add(
        svg::circle(dot_x, ly + 25.0, 2.6).attr("fill", "#ffffff").attr("stroke", "#000000").num("stroke-width", 0.8),
    );
    pic.add(svg::text(dot_x + 8.0, ly + 29.0, 11.0, dot_caption));
    for (i, note) in notes.iter().enumerate() {
        let y = ly + legend_h - 6.0 + i as f64 * NOTE_LINE;
        pic.add(svg::text(MARGIN, y, NOTE_FONT, note).attr("class", "note"));
    }
    pic.finish()
}

/// `note` in lines no wider than `width`, broken after its list separators (`, `, ` · `, `: `); a piece wider than
/// `width` on its own keeps a line of its own.
fn wrap(note: &str, width: f64) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = note;
    while let Some(at) = [", ", " · ", ": "].iter().filter_map(|sep| rest.find(sep).map(|i| i + sep.len())).min() {
        pieces.push(&rest[..at]);
        rest = &rest[at..];
    }
    pieces.push(rest);
    let mut lines: Vec<String> = Vec::new();
    for piece in pieces {
        match lines.last_mut() {
            Some(line) if svg::text_width(&format!("{line}{piece}"), NOTE_FONT, false) <= width => line.push_str(piece),
            _ => lines.push(piece.to_string()),
        }
    }
    lines.iter().map(|l| l.trim_end().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long warning is broken after its separators into lines that fit, losing no text.
    #[test]
    fn notes_wrap_to_the_width_of_the_picture() {
        let note = format!(
            "warning: 9 of 20 decisions are less than 0.9 sure: {}",
            ["Cell_1 node 2 dil_conv_3x3~0,dil_conv_5x5~1 (0.75)"; 9].join(", ")
        );
        let lines = wrap(&note, 400.0);
        assert!(lines.len() > 3, "{lines:?}");
        assert!(lines.iter().all(|l| svg::text_width(l, NOTE_FONT, false) <= 400.0), "{lines:?}");
        assert_eq!(lines.join(" "), note);
        assert_eq!(wrap("short", 400.0), vec!["short".to_string()]);
    }
}
