//! SVG pictures of DARTS cells (in the style of the DARTS paper's cell figures) and of op importances.
//!
//! The layout is computed here rather than by Graphviz so the pictures need no external program and come out the
//! same on every machine. It is built so labels cannot collide: edges from the two inputs put their labels in one
//! column between the inputs and the intermediate nodes, spread apart vertically, and edges between intermediate
//! nodes arc out to the right in lanes, where arcs whose spans overlap get different lanes.
use super::genotype::{CellGenotype, CellKind, DartsOp};
use crate::report::svg::{self, PathData, Svg};

const MARGIN: f64 = 20.0;
const TITLE_SIZE: f64 = 15.0;
const NODE_FONT: f64 = 13.0;
const NODE_H: f64 = 34.0;
/// Vertical distance between intermediate nodes; at least twice a label's height so arcs sharing a lane keep their
/// labels apart.
const NODE_SPACING: f64 = 86.0;
const LABEL_FONT: f64 = 12.0;
const LABEL_PAD: f64 = 5.0;
const LABEL_H: f64 = 17.0;
const LABEL_GAP: f64 = 7.0;
/// Horizontal room left of the input-edge label column, where edges from the two inputs fan out and cross.
const FAN_IN: f64 = 80.0;
/// Horizontal room between the input-edge label column and the intermediate nodes.
const FAN_OUT: f64 = 45.0;
const LANE_GAP: f64 = 24.0;
const ARROW: f64 = 9.0;

const INPUT_FILL: &str = "#b4eeb4";
const NODE_FILL: &str = "#add8e6";
const OUTPUT_FILL: &str = "#eee8aa";
const EDGE_COLOUR: &str = "#333333";
const NONE_COLOUR: &str = "#c4c4c4";
const NONE_TEXT: &str = "#999999";
const CONCAT_COLOUR: &str = "#9a9a9a";

#[derive(Debug, Clone)]
struct NodeBox {
    cx: f64,
    cy: f64,
    w: f64,
    name: String,
    fill: &'static str,
}

impl NodeBox {
    fn left(&self) -> f64 {
        self.cx - self.w / 2.0
    }
    fn right(&self) -> f64 {
        self.cx + self.w / 2.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    /// From c_{k-2} or c_{k-1}, label in the column left of the intermediate nodes.
    Input,
    /// Between intermediate nodes, arcing out to the right in the given lane.
    Arc(usize),
}

#[derive(Debug, Clone)]
struct OpEdge {
    pair: usize,
    op: DartsOp,
    from: usize,
    to: usize,
    label: String,
    label_w: f64,
    route: Route,
    /// Centre of the label; the edge passes through it.
    at: (f64, f64),
    ports: (usize, usize),
}

/// A request for an attachment point on a box side; requests on one side are spread in `key` order so edges
/// leave a box without crossing each other right at its border.
struct PortReq {
    node: usize,
    right: bool,
    key: f64,
}

fn place_ports(reqs: &[PortReq], boxes: &[NodeBox]) -> Vec<(f64, f64)> {
    let mut out = vec![(0.0, 0.0); reqs.len()];
    for (b, node) in boxes.iter().enumerate() {
        for right in [false, true] {
            let mut ids: Vec<usize> =
                (0..reqs.len()).filter(|&i| reqs[i].node == b && reqs[i].right == right).collect();
            ids.sort_by(|&i, &j| reqs[i].key.total_cmp(&reqs[j].key).then(i.cmp(&j)));
            let m = ids.len();
            let step = if m > 1 { (7.0f64).min((NODE_H - 10.0) / (m - 1) as f64) } else { 0.0 };
            for (k, &i) in ids.iter().enumerate() {
                let x = if right { node.right() } else { node.left() };
                out[i] = (x, node.cy + (k as f64 - (m as f64 - 1.0) / 2.0) * step);
            }
        }
    }
    out
}

/// Positions for items wanted at `ideal` (ascending), at least `gap` apart and as close to the wishes as possible:
/// crowded items form clusters centred on their wishes, and clusters that then collide merge.
fn spread(ideal: &[f64], gap: f64) -> Vec<f64> {
    // (members, sum over members of wish minus offset inside the cluster) → cluster top = sum / members.
    let mut clusters: Vec<(usize, f64)> = Vec::new();
    for &y in ideal {
        let (mut len, mut sum) = (1usize, y);
        while let Some(&(plen, psum)) = clusters.last() {
            if psum / plen as f64 + plen as f64 * gap <= sum / len as f64 + 1e-9 {
                break;
            }
            clusters.pop();
            sum += psum - (len * plen) as f64 * gap;
            len += plen;
        }
        clusters.push((len, sum));
    }
    clusters
        .iter()
        .flat_map(|&(len, sum)| {
            let top = sum / len as f64;
            (0..len).map(move |j| top + j as f64 * gap)
        })
        .collect()
}

fn node_name(state: usize) -> String {
    match state {
        0 => "c_{k-2}".into(),
        1 => "c_{k-1}".into(),
        s => (s - 2).to_string(),
    }
}

fn box_width(name: &str) -> f64 {
    (svg::text_width(name, NODE_FONT, false) + 22.0).max(44.0)
}

/// A left-to-right picture of one cell: inputs c_{k-2} and c_{k-1}, the intermediate nodes in a column, the
/// output c_{k}; one labelled arrow per (op, input) pair, dashed grey arrows for the concatenated states. `none`
/// ops are drawn light grey. In a reduction cell the ops reading the inputs have stride 2: their arrows are thick
/// and their labels end in ` /2`. Pairs or concat entries naming a state the cell lacks are left out (the cell's
/// `validate` reports them); everything else of an invalid cell is still drawn.
pub fn cell_svg(cell: &CellGenotype, kind: CellKind, title: &str) -> String {
    let steps = cell.ops.len().div_ceil(2);
    let states = steps + 2;
    let reduce = kind == CellKind::Reduce;
    let centre = (steps.max(1) - 1) as f64 * NODE_SPACING / 2.0;
    let node_y = |s: usize| -> f64 {
        match s {
            0 => centre - 0.75 * NODE_SPACING,
            1 => centre + 0.75 * NODE_SPACING,
            s => (s - 2) as f64 * NODE_SPACING,
        }
    };

    let mut edges: Vec<OpEdge> = Vec::new();
    for (pair, &(op, from)) in cell.ops.iter().enumerate() {
        if from >= states {
            continue;
        }
        let stride = if reduce && from < 2 { " /2" } else { "" };
        let label = format!("{}{stride}", op.name());
        let label_w = svg::text_width(&label, LABEL_FONT, false) + 2.0 * LABEL_PAD;
        let route = if from < 2 { Route::Input } else { Route::Arc(0) };
        edges.push(OpEdge { pair, op, from, to: pair / 2 + 2, label, label_w, route, at: (0.0, 0.0), ports: (0, 0) });
    }

    // Input-edge labels: one column, each node's labels stacked in front of it (sorted by target, then source), so
    // edges run straight from label to node and only cross, if at all, in the fan out of the two inputs.
    let pitch = LABEL_H + LABEL_GAP;
    let mut inputs: Vec<usize> = (0..edges.len()).filter(|&e| edges[e].route == Route::Input).collect();
    inputs.sort_by_key(|&e| (edges[e].to, edges[e].from, e));
    let wishes: Vec<f64> = inputs
        .iter()
        .map(|&e| {
            let same: Vec<&usize> = inputs.iter().filter(|&&o| edges[o].to == edges[e].to).collect();
            let k = same.iter().position(|&&o| o == e).unwrap_or(0);
            node_y(edges[e].to) + (k as f64 - (same.len() as f64 - 1.0) / 2.0) * pitch
        })
        .collect();
    let input_w = box_width(&node_name(0)).max(box_width(&node_name(1)));
    let input_x = MARGIN + input_w / 2.0;
    let input_labels_w = inputs.iter().map(|&e| edges[e].label_w).fold(0.0, f64::max);
    let label_col = input_x + input_w / 2.0 + FAN_IN + input_labels_w / 2.0;
    for (&e, y) in inputs.iter().zip(spread(&wishes, pitch)) {
        edges[e].at = (label_col, y);
    }
    let node_w = (2..states).map(|s| box_width(&node_name(s))).fold(0.0, f64::max);
    let node_x = label_col + input_labels_w / 2.0 + FAN_OUT + node_w / 2.0;

    // Arcs: shortest spans take the innermost free lane; arcs whose spans overlap never share one.
    let mut arcs: Vec<usize> = (0..edges.len()).filter(|&e| edges[e].route != Route::Input).collect();
    let span = |e: &OpEdge| {
        let (a, b) = (node_y(e.from), node_y(e.to));
        (a.min(b), a.max(b))
    };
    arcs.sort_by(|&a, &b| {
        let (sa, sb) = (span(&edges[a]), span(&edges[b]));
        (sa.1 - sa.0).total_cmp(&(sb.1 - sb.0)).then(sa.0.total_cmp(&sb.0)).then(a.cmp(&b))
    });
    let mut lanes: Vec<Vec<(f64, f64)>> = Vec::new();
    for &e in &arcs {
        let s = span(&edges[e]);
        let clash = |t: &(f64, f64)| (s.0 < t.1 && t.0 < s.1) || *t == s;
        let lane = match lanes.iter().position(|l| !l.iter().any(clash)) {
            Some(lane) => lane,
            None => {
                lanes.push(Vec::new());
                lanes.len() - 1
            }
        };
        lanes[lane].push(s);
        edges[e].route = Route::Arc(lane);
    }
    let arc_w = arcs.iter().map(|&e| edges[e].label_w).fold(0.0, f64::max);
    let lanes_x = node_x + node_w / 2.0 + 36.0;
    for &e in &arcs {
        if let Route::Arc(lane) = edges[e].route {
            // An arc over an even number of steps has its middle level with a node, whose concat arrow would
            // then seem to run into the label; half a step further keeps it inside the span and off that level.
            let (lo, hi) = span(&edges[e]);
            let steps_over = ((hi - lo) / NODE_SPACING).round() as usize;
            let shift = if steps_over > 0 && steps_over.is_multiple_of(2) { NODE_SPACING / 2.0 } else { 0.0 };
            edges[e].at = (lanes_x + lane as f64 * (arc_w + LANE_GAP) + arc_w / 2.0, (lo + hi) / 2.0 + shift);
        }
    }
    let lanes_end = if lanes.is_empty() {
        node_x + node_w / 2.0 + 30.0
    } else {
        lanes_x + lanes.len() as f64 * (arc_w + LANE_GAP) - LANE_GAP
    };
    let output_w = box_width("c_{k}");
    let output = states;
    let mut boxes: Vec<NodeBox> = (0..states)
        .map(|s| NodeBox {
            cx: if s < 2 { input_x } else { node_x },
            cy: node_y(s),
            w: if s < 2 { input_w } else { node_w },
            name: node_name(s),
            fill: if s < 2 { INPUT_FILL } else { NODE_FILL },
        })
        .collect();
    boxes.push(NodeBox {
        cx: lanes_end + 60.0 + output_w / 2.0,
        cy: centre,
        w: output_w,
        name: "c_{k}".into(),
        fill: OUTPUT_FILL,
    });

    // Ports. On an intermediate node's right side: arcs going up on top (innermost lane highest), the concat
    // arrow in the middle, arcs going down below (innermost lane lowest), so nested arcs do not cross.
    let mut reqs: Vec<PortReq> = Vec::new();
    let arc_key = |e: &OpEdge, at: usize| -> f64 {
        let lane = match e.route {
            Route::Arc(lane) => lane as f64,
            Route::Input => 0.0,
        };
        let other = if at == e.from { e.to } else { e.from };
        match node_y(other).total_cmp(&node_y(at)) {
            std::cmp::Ordering::Less => lane,
            std::cmp::Ordering::Equal => 1000.0,
            std::cmp::Ordering::Greater => 2000.0 - lane,
        }
    };
    for e in edges.iter_mut() {
        let (src, dst) = match e.route {
            Route::Input => {
                (PortReq { node: e.from, right: true, key: e.at.1 }, PortReq { node: e.to, right: false, key: e.at.1 })
            }
            Route::Arc(_) => (
                PortReq { node: e.from, right: true, key: arc_key(e, e.from) },
                PortReq { node: e.to, right: true, key: arc_key(e, e.to) },
            ),
        };
        e.ports = (reqs.len(), reqs.len() + 1);
        reqs.push(src);
        reqs.push(dst);
    }
    let concat: Vec<usize> = cell.concat.iter().copied().filter(|&s| s < states).collect();
    let mut concat_ports = Vec::new();
    for &s in &concat {
        let key = if s < 2 { f64::INFINITY } else { 1000.0 };
        concat_ports.push((reqs.len(), reqs.len() + 1));
        reqs.push(PortReq { node: s, right: true, key });
        reqs.push(PortReq { node: output, right: false, key: node_y(s) });
    }
    let ports = place_ports(&reqs, &boxes);

    // Vertical extent of everything placed so far; inputs in the concat are routed below it.
    let mut top = boxes.iter().map(|b| b.cy - NODE_H / 2.0).fold(f64::INFINITY, f64::min);
    let mut bottom = boxes.iter().map(|b| b.cy + NODE_H / 2.0).fold(f64::NEG_INFINITY, f64::max);
    for e in &edges {
        top = top.min(e.at.1 - LABEL_H / 2.0);
        bottom = bottom.max(e.at.1 + LABEL_H / 2.0);
    }
    let below = bottom + 28.0;
    if concat.iter().any(|&s| s < 2) {
        bottom = below;
    }

    let subtitle = "reduction cell: ops on c_{k-2} and c_{k-1} have stride 2 (thick arrows, /2)";
    let header = if reduce { 62.0 } else { 44.0 };
    let dy = header - top;
    let right = boxes[output].right() + MARGIN;
    let mut width = right.max(svg::text_width(title, TITLE_SIZE, true) + 2.0 * MARGIN);
    if reduce {
        width = width.max(svg::text_width(subtitle, 11.0, false) + 2.0 * MARGIN);
    }
    let height = bottom + dy + MARGIN;
    let mut pic = Svg::new(width, height);
    pic.arrow_marker("arrow", EDGE_COLOUR, ARROW);
    pic.arrow_marker("arrow-none", NONE_COLOUR, ARROW);
    pic.arrow_marker("arrow-concat", CONCAT_COLOUR, ARROW);
    pic.add(svg::text(MARGIN, 26.0, TITLE_SIZE, title).attr("font-weight", "bold").attr("class", "title"));
    if reduce {
        pic.add(svg::text(MARGIN, 45.0, 11.0, subtitle).attr("fill", "#555555"));
    }
    let p = |i: usize| (ports[i].0, ports[i].1 + dy);

    for (&s, &(a, b)) in concat.iter().zip(&concat_ports) {
        let (p0, p3) = (p(a), p(b));
        let d = if s < 2 {
            let y = below + dy;
            PathData::default()
                .move_to(p0.0, p0.1)
                .cubic_to((p0.0 + 25.0, p0.1), (p0.0 + 25.0, y), (p0.0 + 50.0, y))
                .line_to(p3.0 - 50.0, y)
                .cubic_to((p3.0 - 25.0, y), (p3.0 - 25.0, p3.1), p3)
        } else {
            let dx = (p3.0 - p0.0) / 2.0;
            PathData::default().move_to(p0.0, p0.1).cubic_to((p0.0 + dx, p0.1), (p3.0 - dx, p3.1), p3)
        };
        pic.add(
            svg::path(&d)
                .attr("class", "concat-edge")
                .attr("stroke", CONCAT_COLOUR)
                .num("stroke-width", 1.4)
                .attr("stroke-dasharray", "5 4")
                .attr("marker-end", "url(#arrow-concat)"),
        );
    }

    // `none` edges first so real ops are drawn over them.
    let mut order: Vec<&OpEdge> = edges.iter().collect();
    order.sort_by_key(|e| (e.op != DartsOp::None, e.pair));
    for e in &order {
        let (p0, p3) = (p(e.ports.0), p(e.ports.1));
        let (mx, my) = (e.at.0, e.at.1 + dy);
        let d = match e.route {
            Route::Input => {
                let (l, r) = (mx - e.label_w / 2.0, mx + e.label_w / 2.0);
                let (d0, d1) = ((l - p0.0) / 2.0, (p3.0 - r) / 2.0);
                PathData::default()
                    .move_to(p0.0, p0.1)
                    .cubic_to((p0.0 + d0, p0.1), (l - d0, my), (l, my))
                    .line_to(r, my)
                    .cubic_to((r + d1, my), (p3.0 - d1, p3.1), p3)
            }
            Route::Arc(_) => {
                let dir = if p3.1 >= p0.1 { 1.0 } else { -1.0 };
                let k = 0.55 * (mx - p0.0);
                PathData::default()
                    .move_to(p0.0, p0.1)
                    .cubic_to((p0.0 + k, p0.1), (mx, my - dir * 0.55 * (my - p0.1).abs()), (mx, my))
                    .cubic_to((mx, my + dir * 0.55 * (p3.1 - my).abs()), (p3.0 + k, p3.1), p3)
            }
        };
        let none = e.op == DartsOp::None;
        let thick = reduce && e.from < 2;
        pic.add(
            svg::path(&d)
                .attr("class", "op-edge")
                .attr("data-pair", &e.pair.to_string())
                .attr("stroke", if none { NONE_COLOUR } else { EDGE_COLOUR })
                .num("stroke-width", if thick { 2.6 } else { 1.4 })
                .attr("marker-end", if none { "url(#arrow-none)" } else { "url(#arrow)" }),
        );
    }

    for b in &boxes {
        let y = b.cy + dy;
        pic.add(
            svg::rect(b.left(), y - NODE_H / 2.0, b.w, NODE_H)
                .num("rx", 7.0)
                .attr("class", "node")
                .attr("fill", b.fill)
                .attr("stroke", "#555555")
                .num("stroke-width", 1.2),
        );
        pic.add(
            svg::text(b.cx, y + NODE_FONT * 0.36, NODE_FONT, &b.name)
                .attr("text-anchor", "middle")
                .attr("class", "node-name"),
        );
    }

    for e in &edges {
        let (x, y) = (e.at.0, e.at.1 + dy);
        pic.add(
            svg::rect(x - e.label_w / 2.0, y - LABEL_H / 2.0, e.label_w, LABEL_H)
                .num("rx", 3.0)
                .attr("class", "label-bg")
                .attr("data-pair", &e.pair.to_string())
                .attr("fill", "#ffffff")
                .num("fill-opacity", 0.88),
        );
        pic.add(
            svg::text(x, y + LABEL_FONT * 0.35, LABEL_FONT, &e.label)
                .attr("class", "op-label")
                .attr("data-pair", &e.pair.to_string())
                .attr("text-anchor", "middle")
                .attr("fill", if e.op == DartsOp::None { NONE_TEXT } else { "#000000" }),
        );
    }
    pic.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::heatmap::importance_heatmap_svg;
    use crate::space::darts::genotype::{Genotype, BUILTIN_NAMES};

    /// Every built-in cell with its kind and a title.
    fn builtin_cells() -> Vec<(String, CellGenotype, CellKind)> {
        let mut out = Vec::new();
        for name in BUILTIN_NAMES {
            match Genotype::builtin(name).unwrap() {
                Genotype::Stages { cells } => {
                    for (k, cell) in cells.into_iter().enumerate() {
                        let kind = if k % 2 == 1 { CellKind::Reduce } else { CellKind::Normal };
                        out.push((format!("{name}_{k}"), cell, kind));
                    }
                }
                Genotype::NormalReduce { normal, reduce } => {
                    out.push((format!("{name}_normal"), normal, CellKind::Normal));
                    out.push((format!("{name}_reduce"), reduce, CellKind::Reduce));
                }
            }
        }
        out
    }

    fn rect_of(n: roxmltree::Node) -> (f64, f64, f64, f64) {
        let f = |k: &str| n.attribute(k).unwrap().parse::<f64>().unwrap();
        (f("x"), f("y"), f("width"), f("height"))
    }

    fn overlap(a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)) -> bool {
        a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
    }

    fn with_class<'a>(doc: &'a roxmltree::Document, class: &str) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants().filter(|n| n.attribute("class") == Some(class)).collect()
    }

    #[test]
    fn cells_draw_every_pair_once_with_separate_labels() {
        for (name, cell, kind) in builtin_cells() {
            let title = format!("{name} <&> (16 ch)");
            let text = cell_svg(&cell, kind, &title);
            let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let titles = with_class(&doc, "title");
            assert_eq!(titles[0].text(), Some(title.as_str()), "{name}");
            let edges = with_class(&doc, "op-edge");
            let labels = with_class(&doc, "op-label");
            assert_eq!(edges.len(), cell.ops.len(), "{name}");
            for (k, &(op, input)) in cell.ops.iter().enumerate() {
                let pair = k.to_string();
                let of = |nodes: &[roxmltree::Node]| {
                    nodes.iter().filter(|n| n.attribute("data-pair") == Some(&pair)).count()
                };
                assert_eq!((of(&edges), of(&labels)), (1, 1), "{name} pair {k}");
                let label = labels.iter().find(|n| n.attribute("data-pair") == Some(&pair)).unwrap().text().unwrap();
                let stride = kind == CellKind::Reduce && input < 2;
                assert_eq!(label, format!("{}{}", op.name(), if stride { " /2" } else { "" }), "{name} pair {k}");
            }
            assert_eq!(with_class(&doc, "concat-edge").len(), cell.concat.len(), "{name}");
            let bgs: Vec<_> = with_class(&doc, "label-bg").into_iter().map(rect_of).collect();
            let nodes: Vec<_> = with_class(&doc, "node").into_iter().map(rect_of).collect();
            assert_eq!(nodes.len(), cell.steps() + 3, "{name}");
            for (i, a) in bgs.iter().enumerate() {
                for b in bgs[i + 1..].iter().chain(&nodes) {
                    assert!(!overlap(*a, *b), "{name}: label {a:?} overlaps {b:?}");
                }
                let width = doc.root_element().attribute("width").unwrap().parse::<f64>().unwrap();
                assert!(a.0 >= 0.0 && a.0 + a.2 <= width, "{name}: label {a:?} outside the picture");
            }
        }
    }

    #[test]
    fn spread_keeps_free_items_and_centres_crowds() {
        assert_eq!(spread(&[0.0, 100.0], 10.0), vec![0.0, 100.0]);
        assert_eq!(spread(&[0.0, 0.0, 0.0], 10.0), vec![-10.0, 0.0, 10.0]);
        // The crowd at 20 pushes into the item at 5, and the merged cluster centres on all three wishes.
        assert_eq!(spread(&[5.0, 20.0, 20.0], 10.0), vec![5.0, 15.0, 25.0]);
        assert_eq!(spread(&[10.0, 12.0, 14.0], 10.0), vec![2.0, 12.0, 22.0]);
    }

    #[test]
    fn invalid_cells_do_not_panic() {
        let cells = [
            CellGenotype { ops: vec![], concat: vec![] },
            CellGenotype { ops: vec![(DartsOp::None, 0)], concat: vec![0, 1, 2, 9] },
            CellGenotype {
                ops: vec![
                    (DartsOp::SkipConnect, 2),
                    (DartsOp::SkipConnect, 2),
                    (DartsOp::AvgPool3x3, 7),
                    (DartsOp::None, 3),
                ],
                concat: vec![3, 2],
            },
        ];
        for cell in &cells {
            for kind in [CellKind::Normal, CellKind::Reduce] {
                roxmltree::Document::parse(&cell_svg(cell, kind, "bad")).unwrap();
            }
        }
    }

    fn random_importances(cells: usize, edges: usize, ops: usize) -> Vec<Vec<Vec<f64>>> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        (0..cells).map(|_| (0..edges).map(|_| (0..ops).map(|_| rng.gen::<f64>()).collect()).collect()).collect()
    }

    fn darts_edge_labels() -> Vec<String> {
        (0..4).flat_map(|node| (0..node + 2).map(move |input| format!("{node}←{}", node_name(input)))).collect()
    }

    #[test]
    fn heatmap_has_a_square_per_value_and_a_dot_per_row() {
        let ops: Vec<&str> = DartsOp::ALL.iter().map(|o| o.name()).collect();
        let nb201_ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];
        let nb201_edges: Vec<String> = (0..6).map(|e| format!("edge {e}")).collect();
        let cases: [(usize, usize, &[&str], Vec<String>); 3] =
            [(5, 14, &ops, darts_edge_labels()), (3, 14, &ops, darts_edge_labels()), (1, 6, &nb201_ops, nb201_edges)];
        for (cells, edges, op_names, edge_labels) in cases {
            let mut values = random_importances(cells, edges, op_names.len());
            let none = op_names.iter().position(|&n| n == "none").unwrap();
            values[0][0][none] = 10.0;
            let titles: Vec<String> = (0..cells).map(|c| format!("Cell_{c}")).collect();
            let text = importance_heatmap_svg(&values, &titles, &edge_labels, op_names, "importances");
            let doc = roxmltree::Document::parse(&text).unwrap();
            assert_eq!(with_class(&doc, "square").len(), cells * edges * op_names.len());
            assert_eq!(with_class(&doc, "argmax").len(), cells * edges);
            assert_eq!(with_class(&doc, "panel-title").len(), cells);
            assert_eq!(with_class(&doc, "row-label").len(), cells * edges);
            assert!(text.contains("Cell_2") || cells < 3);
            // The winner of a row whose largest value is `none` is the best other op, so its colour is not the top.
            let squares = with_class(&doc, "square");
            assert_eq!(squares[none].attribute("fill"), Some(svg::colormap(1.0).as_str()));
        }
    }

    #[test]
    fn heatmap_accepts_ragged_and_empty_input() {
        let ragged = vec![vec![vec![1.0, f64::NAN], vec![]], vec![vec![-1.0, 0.0, 0.0]]];
        for values in [ragged, vec![]] {
            roxmltree::Document::parse(&importance_heatmap_svg(&values, &[], &[], &["a"], "t")).unwrap();
        }
    }

    /// Every text node of a rendered tree with its content and box in picture coordinates, in document order.
    fn rendered_texts(group: &resvg::usvg::Group, out: &mut Vec<(String, resvg::usvg::Rect)>) {
        for node in group.children() {
            match node {
                resvg::usvg::Node::Group(g) => rendered_texts(g, out),
                resvg::usvg::Node::Text(t) => {
                    out.push((t.chunks().iter().map(|c| c.text()).collect(), t.abs_bounding_box()))
                }
                _ => {}
            }
        }
    }

    /// Renders every picture to `target/plots/*.png` with resvg, checks it is not blank and, where system fonts are
    /// found, that the real text fits: op names in their label backgrounds, node names in their boxes, everything
    /// inside the picture. Without fonts the text is simply missing and only the blankness check runs.
    #[test]
    fn pictures_render() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/plots");
        std::fs::create_dir_all(&dir).unwrap();
        let mut opt = resvg::usvg::Options::default();
        opt.fontdb_mut().load_system_fonts();
        let mut pictures: Vec<(String, String)> = builtin_cells()
            .into_iter()
            .map(|(name, cell, kind)| {
                let title = format!("{name} ({}, 16 ch)", if kind == CellKind::Reduce { "reduce" } else { "normal" });
                (name, cell_svg(&cell, kind, &title))
            })
            .collect();
        let odd = CellGenotype {
            ops: vec![
                (DartsOp::None, 0),
                (DartsOp::SepConv3x3, 1),
                (DartsOp::None, 2),
                (DartsOp::SkipConnect, 0),
                (DartsOp::AvgPool3x3, 1),
                (DartsOp::DilConv5x5, 2),
            ],
            concat: vec![1, 3, 4],
        };
        pictures.push(("odd".into(), cell_svg(&odd, CellKind::Reduce, "none ops, c_{k-1} in the output")));
        let ops: Vec<&str> = DartsOp::ALL.iter().map(|o| o.name()).collect();
        let titles: Vec<String> = (0..8).map(|c| format!("Cell_{c}")).collect();
        let values = random_importances(8, 14, 8);
        pictures.push((
            "heatmap".into(),
            importance_heatmap_svg(&values, &titles, &darts_edge_labels(), &ops, "Op importance (random)"),
        ));
        let nb201_ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];
        let nb201_edges: Vec<String> = ["1←0", "2←0", "2←1", "3←0", "3←1", "3←2"].map(String::from).to_vec();
        pictures.push((
            "heatmap_nb201".into(),
            importance_heatmap_svg(&random_importances(3, 6, 5), &titles, &nb201_edges, &nb201_ops, "NB201 (random)"),
        ));
        for (name, text) in pictures {
            std::fs::write(dir.join(format!("{name}.svg")), &text).unwrap();
            let tree = resvg::usvg::Tree::from_str(&text, &opt).unwrap();
            let size = tree.size().to_int_size();
            let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
            resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
            let dark = pixmap.pixels().iter().filter(|p| p.red() < 128 && p.alpha() == 255).count();
            assert!(dark > 500, "{name}: only {dark} dark pixels");
            pixmap.save_png(dir.join(format!("{name}.png"))).unwrap();

            if opt.fontdb.is_empty() {
                continue;
            }
            let mut rendered = Vec::new();
            rendered_texts(tree.root(), &mut rendered);
            let doc = roxmltree::Document::parse(&text).unwrap();
            let written: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("text")).collect();
            assert_eq!(rendered.len(), written.len(), "{name}: every text is laid out");
            let (w, h) = (size.width() as f32, size.height() as f32);
            let nodes = with_class(&doc, "node");
            let names = with_class(&doc, "node-name");
            let inside = |r: &resvg::usvg::Rect, (x, y, bw, bh): (f64, f64, f64, f64)| {
                let (x, y, bw, bh) = (x as f32, y as f32, bw as f32, bh as f32);
                r.left() >= x + 1.0 && r.right() <= x + bw - 1.0 && r.top() >= y && r.bottom() <= y + bh
            };
            for ((content, r), node) in rendered.iter().zip(&written) {
                assert_eq!(Some(content.as_str()), node.text(), "{name}");
                assert!(r.left() >= 0.0 && r.top() >= 0.0 && r.right() <= w && r.bottom() <= h, "{name}: {content}");
                if node.attribute("class") == Some("op-label") {
                    let pair = node.attribute("data-pair");
                    let bg = with_class(&doc, "label-bg").into_iter().find(|b| b.attribute("data-pair") == pair);
                    let bg = rect_of(bg.unwrap());
                    assert!(inside(r, bg), "{name}: `{content}` {r:?} outside its background {bg:?}");
                }
                if let Some(k) = names.iter().position(|n| n == node) {
                    let b = rect_of(nodes[k]);
                    assert!(inside(r, b), "{name}: `{content}` {r:?} outside its box {b:?}");
                }
            }
        }
    }
}
