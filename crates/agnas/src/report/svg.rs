//! A minimal SVG writer for the report pictures.
//!
//! Pictures are written as text so they need no renderer at run time; numbers keep at most two decimals so the
//! same input always gives byte-identical files (diffable, cacheable), and every text uses one font list so the
//! layout code can estimate text widths.

/// Font list for every text element; the layout estimates widths for DejaVu Sans (the usual Linux fallback).
pub const FONT_FAMILY: &str = "DejaVu Sans, Arial, sans-serif";

/// Escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Formats a coordinate with at most two decimals; non-finite values become 0 so a bad input cannot produce
/// unparsable SVG.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "0".into();
    }
    let s = format!("{x:.2}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Estimated advance width of `text` in DejaVu Sans at `size` px (bold is about 10 % wider). Slightly generous,
/// so boxes sized from it still fit when a viewer substitutes Arial, which is narrower.
pub fn text_width(text: &str, size: f64, bold: bool) -> f64 {
    let em: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '|' | '!' | '\'' => 0.3,
            'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '/' | '-' | ' ' => 0.4,
            'm' | 'w' | 'M' | 'W' => 0.98,
            '_' => 0.5,
            'A'..='Z' => 0.75,
            c if c.is_ascii() => 0.64,
            _ => 0.85,
        })
        .sum();
    em * size * if bold { 1.1 } else { 1.0 }
}

/// Viridis sampled at nine evenly spaced points; linear interpolation between them stays close to the original.
const VIRIDIS: [[u8; 3]; 9] = [
    [0x44, 0x01, 0x54],
    [0x47, 0x2c, 0x7a],
    [0x3b, 0x52, 0x8b],
    [0x2c, 0x72, 0x8e],
    [0x21, 0x91, 0x8c],
    [0x28, 0xae, 0x80],
    [0x5e, 0xc9, 0x62],
    [0xad, 0xdc, 0x30],
    [0xfd, 0xe7, 0x25],
];

/// Maps `v` in [0, 1] to a viridis colour `#rrggbb`: perceptually uniform and readable in grey scale and by
/// colour-blind readers. Values outside are clamped; NaN maps to the low end.
pub fn colormap(v: f64) -> String {
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    let pos = v * (VIRIDIS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    let t = pos - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |k: usize| (a[k] as f64 + (b[k] as f64 - a[k] as f64) * t).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(0), mix(1), mix(2))
}

/// One element with attributes, optional text content and children.
#[derive(Debug, Clone)]
pub struct El {
    name: &'static str,
    attrs: Vec<(String, String)>,
    text: Option<String>,
    children: Vec<El>,
}

impl El {
    pub fn new(name: &'static str) -> El {
        El { name, attrs: Vec::new(), text: None, children: Vec::new() }
    }

    /// Sets an attribute, replacing an earlier value (XML forbids duplicates), so callers can override the
    /// defaults of the constructors below.
    pub fn attr(mut self, key: &str, value: &str) -> El {
        match self.attrs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.attrs.push((key.to_string(), value.to_string())),
        }
        self
    }

    /// Adds a numeric attribute, rounded like every coordinate.
    pub fn num(self, key: &str, value: f64) -> El {
        self.attr(key, &num(value))
    }

    /// Sets the text content; it is escaped.
    pub fn text(mut self, content: &str) -> El {
        self.text = Some(content.to_string());
        self
    }

    pub fn child(mut self, child: El) -> El {
        self.children.push(child);
        self
    }

    fn render(&self, out: &mut String) {
        out.push('<');
        out.push_str(self.name);
        for (k, v) in &self.attrs {
            out.push_str(&format!(" {k}=\"{}\"", escape(v)));
        }
        if self.text.is_none() && self.children.is_empty() {
            out.push_str("/>\n");
            return;
        }
        out.push('>');
        if let Some(text) = &self.text {
            out.push_str(&escape(text));
        }
        if !self.children.is_empty() {
            out.push('\n');
            for c in &self.children {
                c.render(out);
            }
        }
        out.push_str(&format!("</{}>\n", self.name));
    }
}

pub fn rect(x: f64, y: f64, w: f64, h: f64) -> El {
    El::new("rect").num("x", x).num("y", y).num("width", w).num("height", h)
}

pub fn line(x1: f64, y1: f64, x2: f64, y2: f64) -> El {
    El::new("line").num("x1", x1).num("y1", y1).num("x2", x2).num("y2", y2)
}

pub fn circle(cx: f64, cy: f64, r: f64) -> El {
    El::new("circle").num("cx", cx).num("cy", cy).num("r", r)
}

pub fn path(d: &PathData) -> El {
    El::new("path").attr("d", d.0.trim_end()).attr("fill", "none")
}

/// A text element in the shared font; `y` is the baseline.
pub fn text(x: f64, y: f64, size: f64, content: &str) -> El {
    El::new("text").num("x", x).num("y", y).attr("font-family", FONT_FAMILY).num("font-size", size).text(content)
}

/// Path commands in absolute coordinates.
#[derive(Debug, Clone, Default)]
pub struct PathData(String);

impl PathData {
    pub fn move_to(mut self, x: f64, y: f64) -> PathData {
        self.0.push_str(&format!("M{},{} ", num(x), num(y)));
        self
    }

    pub fn line_to(mut self, x: f64, y: f64) -> PathData {
        self.0.push_str(&format!("L{},{} ", num(x), num(y)));
        self
    }

    pub fn cubic_to(mut self, c1: (f64, f64), c2: (f64, f64), to: (f64, f64)) -> PathData {
        self.0.push_str(&format!(
            "C{},{} {},{} {},{} ",
            num(c1.0),
            num(c1.1),
            num(c2.0),
            num(c2.1),
            num(to.0),
            num(to.1)
        ));
        self
    }

    pub fn close(mut self) -> PathData {
        self.0.push_str("Z ");
        self
    }
}

/// A picture of fixed size on a white background (transparent pictures look broken in dark viewers).
#[derive(Debug, Clone)]
pub struct Svg {
    width: f64,
    height: f64,
    defs: Vec<El>,
    body: Vec<El>,
}

impl Svg {
    pub fn new(width: f64, height: f64) -> Svg {
        let background = rect(0.0, 0.0, width, height).attr("fill", "#ffffff");
        Svg { width, height, defs: Vec::new(), body: vec![background] }
    }

    pub fn add(&mut self, el: El) {
        self.body.push(el);
    }

    /// Defines a filled arrowhead `url(#id)` for `marker-end`. Its size is in user units, so thick strokes keep the
    /// same head, and its tip sits on the path's end point, so arrows can end exactly on a box border.
    pub fn arrow_marker(&mut self, id: &str, colour: &str, size: f64) {
        let head = PathData::default().move_to(0.0, 0.0).line_to(10.0, 5.0).line_to(0.0, 10.0).close();
        self.defs.push(
            El::new("marker")
                .attr("id", id)
                .attr("viewBox", "0 0 10 10")
                .num("refX", 10.0)
                .num("refY", 5.0)
                .num("markerWidth", size)
                .num("markerHeight", size)
                .attr("markerUnits", "userSpaceOnUse")
                .attr("orient", "auto")
                .child(path(&head).attr("fill", colour)),
        );
    }

    /// Defines a left-to-right gradient `url(#id)` through `stops` (offset in [0, 1], colour).
    pub fn linear_gradient(&mut self, id: &str, stops: &[(f64, String)]) {
        let mut g =
            El::new("linearGradient").attr("id", id).num("x1", 0.0).num("y1", 0.0).num("x2", 1.0).num("y2", 0.0);
        for (offset, colour) in stops {
            g = g.child(El::new("stop").num("offset", *offset).attr("stop-color", colour));
        }
        self.defs.push(g);
    }

    pub fn finish(self) -> String {
        let (w, h) = (num(self.width), num(self.height));
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n"
        );
        if !self.defs.is_empty() {
            out.push_str("<defs>\n");
            for d in &self.defs {
                d.render(&mut out);
            }
            out.push_str("</defs>\n");
        }
        for el in &self.body {
            el.render(&mut out);
        }
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_deterministic() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.005_000_1), "1.01");
        assert_eq!(num(2.50), "2.5");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(num(-12.345), "-12.35");
    }

    #[test]
    fn colormap_hits_the_anchors_and_clamps() {
        assert_eq!(colormap(0.0), "#440154");
        assert_eq!(colormap(0.5), "#21918c");
        assert_eq!(colormap(1.0), "#fde725");
        assert_eq!(colormap(7.0), "#fde725");
        assert_eq!(colormap(f64::NAN), "#440154");
        assert_eq!(colormap(0.0625), "#461767");
    }

    #[test]
    fn elements_escape_and_parse() {
        let mut svg = Svg::new(10.0, 10.0);
        svg.arrow_marker("a", "#000", 8.0);
        svg.linear_gradient("g", &[(0.0, colormap(0.0)), (1.0, colormap(1.0))]);
        svg.add(text(1.0, 2.0, 12.0, "a<b & \"c\"").attr("title", "x'y"));
        svg.add(path(&PathData::default().move_to(0.0, 0.0).cubic_to((1.0, 1.0), (2.0, 2.0), (3.0, 3.333))));
        let out = svg.finish();
        let doc = roxmltree::Document::parse(&out).unwrap();
        let t = doc.descendants().find(|n| n.has_tag_name("text")).unwrap();
        assert_eq!(t.text(), Some("a<b & \"c\""));
        assert_eq!(t.attribute("title"), Some("x'y"));
        assert_eq!(t.attribute("font-family"), Some(FONT_FAMILY));
        assert!(out.contains("C1,1 2,2 3,3.33\""), "{out}");
    }
}
