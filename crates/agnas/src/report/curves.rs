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
            .build_cartesian_2d(x, y)
            .map_err(|e| fail(&e))?;
        // Epochs are whole numbers: "5", not "5.0".
        let whole = |x: &f64| if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x}") };
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&whole)
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
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
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
}
