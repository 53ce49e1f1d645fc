//! SVG pictures of cells (in the style of the DARTS paper's cell figures), for any cell-based space.
//!
//! The layout is computed here rather than by Graphviz so the pictures need no external program and come out the
//! same on every machine. It is built so labels cannot collide: edges from the inputs put their labels in one
//! column between the inputs and the intermediate nodes, spread apart vertically, and edges between intermediate
//! nodes arc out to the right in lanes, where arcs whose spans overlap get different lanes.
use super::svg::{self, PathData, Svg};

/// A cell to draw. States are numbered inputs first, then the intermediate nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct CellPicture {
    pub title: String,
    /// A line under the title (what thick arrows mean, …).
    pub subtitle: Option<String>,
    /// Names of the input states (one or two).
    pub inputs: Vec<String>,
    /// Names of the intermediate nodes, in computation order.
    pub nodes: Vec<String>,
    pub edges: Vec<PictureEdge>,
    /// Name of the output box.
    pub output: String,
    /// The states joined into the output.
    pub concat: Vec<usize>,
}

/// One labelled arrow between two states.
#[derive(Debug, Clone, PartialEq)]
pub struct PictureEdge {
    pub from: usize,
    pub to: usize,
    pub label: String,
    /// Drawn light grey (`none`).
    pub faint: bool,
    /// Drawn thick (a strided op).
    pub thick: bool,
}

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
    faint: bool,
    thick: bool,
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
pub(crate) fn spread(ideal: &[f64], gap: f64) -> Vec<f64> {
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

fn box_width(name: &str) -> f64 {
    (svg::text_width(name, NODE_FONT, false) + 22.0).max(44.0)
}

/// A left-to-right picture of one cell: the inputs, the intermediate nodes in a column, the output; one labelled
/// arrow per edge, dashed grey arrows for the concatenated states. Edges or concat entries naming a state the cell
/// lacks are left out; everything else of an invalid cell is still drawn.
pub fn cell_svg(cell: &CellPicture) -> String {
    let title = cell.title.as_str();
    let n_in = cell.inputs.len().max(1);
    let steps = cell.nodes.len();
    let states = n_in + steps;
    let state_name = |s: usize| -> &str {
        if s < n_in {
            cell.inputs.get(s).map_or("", String::as_str)
        } else {
            cell.nodes[s - n_in].as_str()
        }
    };
    let centre = (steps.max(1) - 1) as f64 * NODE_SPACING / 2.0;
    let node_y = |s: usize| -> f64 {
        if s < n_in {
            centre + (s as f64 - (n_in as f64 - 1.0) / 2.0) * 1.5 * NODE_SPACING
        } else {
            (s - n_in) as f64 * NODE_SPACING
        }
    };

    let mut edges: Vec<OpEdge> = Vec::new();
    for (pair, e) in cell.edges.iter().enumerate() {
        if e.from >= states || e.to >= states || e.to < n_in {
            continue;
        }
        let label_w = svg::text_width(&e.label, LABEL_FONT, false) + 2.0 * LABEL_PAD;
        let route = if e.from < n_in { Route::Input } else { Route::Arc(0) };
        edges.push(OpEdge {
            pair,
            faint: e.faint,
            thick: e.thick,
            from: e.from,
            to: e.to,
            label: e.label.clone(),
            label_w,
            route,
            at: (0.0, 0.0),
            ports: (0, 0),
        });
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
    let input_w = (0..n_in).map(|s| box_width(state_name(s))).fold(0.0, f64::max);
    let input_x = MARGIN + input_w / 2.0;
    let input_labels_w = inputs.iter().map(|&e| edges[e].label_w).fold(0.0, f64::max);
    let label_col = input_x + input_w / 2.0 + FAN_IN + input_labels_w / 2.0;
    for (&e, y) in inputs.iter().zip(spread(&wishes, pitch)) {
        edges[e].at = (label_col, y);
    }
    let node_w = (n_in..states).map(|s| box_width(state_name(s))).fold(0.0, f64::max);
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
    let output_w = box_width(&cell.output);
    let output = states;
    let mut boxes: Vec<NodeBox> = (0..states)
        .map(|s| NodeBox {
            cx: if s < n_in { input_x } else { node_x },
            cy: node_y(s),
            w: if s < n_in { input_w } else { node_w },
            name: state_name(s).to_string(),
            fill: if s < n_in { INPUT_FILL } else { NODE_FILL },
        })
        .collect();
    boxes.push(NodeBox {
        cx: lanes_end + 60.0 + output_w / 2.0,
        cy: centre,
        w: output_w,
        name: cell.output.clone(),
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
        let key = if s < n_in { f64::INFINITY } else { 1000.0 };
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
    if concat.iter().any(|&s| s < n_in) {
        bottom = below;
    }

    let header = if cell.subtitle.is_some() { 62.0 } else { 44.0 };
    let dy = header - top;
    let right = boxes[output].right() + MARGIN;
    let mut width = right.max(svg::text_width(title, TITLE_SIZE, true) + 2.0 * MARGIN);
    if let Some(subtitle) = &cell.subtitle {
        width = width.max(svg::text_width(subtitle, 11.0, false) + 2.0 * MARGIN);
    }
    let height = bottom + dy + MARGIN;
    let mut pic = Svg::new(width, height);
    pic.arrow_marker("arrow", EDGE_COLOUR, ARROW);
    pic.arrow_marker("arrow-none", NONE_COLOUR, ARROW);
    pic.arrow_marker("arrow-concat", CONCAT_COLOUR, ARROW);
    pic.add(svg::text(MARGIN, 26.0, TITLE_SIZE, title).attr("font-weight", "bold").attr("class", "title"));
    if let Some(subtitle) = &cell.subtitle {
        pic.add(svg::text(MARGIN, 45.0, 11.0, subtitle).attr("fill", "#555555"));
    }
    let p = |i: usize| (ports[i].0, ports[i].1 + dy);

    for (&s, &(a, b)) in concat.iter().zip(&concat_ports) {
        let (p0, p3) = (p(a), p(b));
        let d = if s < n_in {
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
    order.sort_by_key(|e| (!e.faint, e.pair));
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
        let (none, thick) = (e.faint, e.thick);
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
                .attr("fill", if e.faint { NONE_TEXT } else { "#000000" }),
        );
    }
    pic.finish()
}
