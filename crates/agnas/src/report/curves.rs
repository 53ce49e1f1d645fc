//! Line charts (plotters' SVG backend): values over epochs, one line per series.
use crate::error::Result;
use plotters::prelude::*;
use std::ops::Range;

/// One line: its points, its colour and width; a label puts it in the legend.
pub struct Series {
    pub label: Option<String>,
    pub points: Vec<(f64, f64)>,
    pub colour: RGBColor,
    pub width: u32,
}

pub const GREY: RGBColor = RGBColor(190, 190, 190);
pub const INK: RGBColor = RGBColor(20, 20, 20);
pub const ACCENT: RGBColor = RGBColor(200, 40, 40);
pub const COOL: RGBColor = RGBColor(40, 90, 200);

/// An SVG chart of `series` over `x` and `y`, titled, with axis descriptions and a legend of the labelled series.
pub fn line_chart_svg(
    title: &str,
    (x_desc, x): (&str, Range<f64>),
    (y_desc, y): (&str, Range<f64>),
    series: &[Series],
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 420)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| crate::Error::Message(format!("drawing {title}: {e}"));
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(x.clone(), y.clone())
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| fail(&e))?;
        for s in series {
            let style = ShapeStyle { color: s.colour.to_rgba(), filled: false, stroke_width: s.width };
            // A series of one point (a held-out pass at the last epoch only) has no line to show: a dot marks it.
            let drawn = if s.points.len() == 1 {
                let dot = ShapeStyle { filled: true, ..style };
                chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, dot))).map_err(|e| fail(&e))?
            } else {
                chart.draw_series(LineSeries::new(s.points.iter().copied(), style)).map_err(|e| fail(&e))?
            };
            if let Some(label) = &s.label {
                drawn.label(label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }
        }
        chart
            .configure_series_labels()
            .position(emptiest_corner(series, &x, &y))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

/// A tick label: "5", not "5.0"; "1.8", not the "1.7999999999999998" of a sum of steps.
fn tick(v: &f64) -> String {
    let text = format!("{v:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The corner of the plot where the legend hides the fewest points (a lone held-out dot at the last epoch
/// included); lower right where all are alike.
fn emptiest_corner(series: &[Series], x: &Range<f64>, y: &Range<f64>) -> SeriesLabelPosition {
    let share = |v: f64, r: &Range<f64>| (v - r.start) / (r.end - r.start);
    let hidden = |right: bool, upper: bool| {
        let points = series.iter().flat_map(|s| &s.points);
        points
            .filter(|&&(px, py)| {
                let (u, v) = (share(px, x), share(py, y));
                (if right { u > 0.6 } else { u < 0.4 }) && (if upper { v > 0.7 } else { v < 0.3 })
            })
            .count()
    };
    [
        (SeriesLabelPosition::LowerRight, hidden(true, false)),
        (SeriesLabelPosition::UpperRight, hidden(true, true)),
        (SeriesLabelPosition::LowerLeft, hidden(false, false)),
        (SeriesLabelPosition::UpperLeft, hidden(false, true)),
    ]
    .into_iter()
    .min_by_key(|(_, n)| *n)
    .map_or(SeriesLabelPosition::LowerRight, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_holds_its_title_labels_and_one_path_per_series() {
        let series = [
            Series {
                label: Some("rising".into()),
                points: vec![(1.0, 0.1), (2.0, 0.5), (3.0, 0.9)],
                colour: INK,
                width: 2,
            },
            Series { label: None, points: vec![(1.0, 0.9), (3.0, 0.2)], colour: GREY, width: 1 },
        ];
        let svg = line_chart_svg("t <&>", ("epoch", 1.0..3.0), ("share", 0.0..1.0), &series).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).map(str::trim).collect();
        assert!(texts.contains(&"t <&>") && texts.contains(&"rising") && texts.contains(&"epoch"), "{texts:?}");
        let lines = doc.descendants().filter(|n| n.has_tag_name("polyline")).count();
        assert!(lines >= 2, "{lines} polylines");
    }

    /// Tick labels of summed steps read as written; the legend leaves a lone held-out point at the last epoch
    /// (low, at the right) in sight.
    #[test]
    fn ticks_are_short_and_the_legend_hides_no_lone_point() {
        assert_eq!((tick(&1.7999999999999998), tick(&5.0), tick(&0.25)), ("1.8".into(), "5".into(), "0.25".into()));
        let train = Series { label: None, points: vec![(1.0, 0.1), (2.0, 0.5), (3.0, 0.9)], colour: INK, width: 2 };
        let heldout = Series { label: None, points: vec![(3.0, 0.05)], colour: ACCENT, width: 2 };
        let corner = emptiest_corner(&[train, heldout], &(1.0..3.0), &(0.0..1.0));
        assert!(matches!(corner, SeriesLabelPosition::UpperLeft), "the legend covers a point");
    }
}
