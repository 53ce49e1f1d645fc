//! Pictures of DARTS cells: the genotype as the cell drawer of `report` takes it.
use super::genotype::{CellGenotype, CellKind, DartsOp};
use crate::report::cell::{self, CellPicture, PictureEdge};

const REDUCE_SUBTITLE: &str = "reduction cell: ops on c_{k-2} and c_{k-1} have stride 2 (thick arrows, /2)";

/// A DARTS cell: inputs c_{k-2} and c_{k-1}, the intermediate nodes, the output c_{k}; one arrow per (op, input)
/// pair. In a reduction cell the ops reading the inputs have stride 2: their arrows are thick and their labels end
/// in ` /2`. Pairs or concat entries naming a state the cell lacks are left out (the cell's `validate` reports them).
pub fn cell_svg(cell: &CellGenotype, kind: CellKind, title: &str) -> String {
    let reduce = kind == CellKind::Reduce;
    let steps = cell.ops.len().div_ceil(2);
    let edges = cell
        .ops
        .iter()
        .enumerate()
        .map(|(pair, &(op, from))| {
            let strided = reduce && from < 2;
            PictureEdge {
                from,
                to: pair / 2 + 2,
                label: format!("{}{}", op.name(), if strided { " /2" } else { "" }),
                faint: op == DartsOp::None,
                thick: strided,
            }
        })
        .collect();
    cell::cell_svg(&CellPicture {
        title: title.to_string(),
        subtitle: reduce.then(|| REDUCE_SUBTITLE.to_string()),
        inputs: vec!["c_{k-2}".into(), "c_{k-1}".into()],
        nodes: (0..steps).map(|i| i.to_string()).collect(),
        edges,
        output: "c_{k}".into(),
        concat: cell.concat.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::cell::spread;
    use crate::report::heatmap::importance_heatmap_svg;
    use crate::report::svg;
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
        crate::space::darts::node_edge_labels(4)
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
            let text = importance_heatmap_svg(&values, &titles, &edge_labels, op_names, "importances", &[]);
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
            roxmltree::Document::parse(&importance_heatmap_svg(&values, &[], &[], &["a"], "t", &[])).unwrap();
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
            importance_heatmap_svg(&values, &titles, &darts_edge_labels(), &ops, "Op importance (random)", &[]),
        ));
        let nb201_ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];
        let nb201_edges: Vec<String> = ["1←0", "2←0", "2←1", "3←0", "3←1", "3←2"].map(String::from).to_vec();
        pictures.push((
            "heatmap_nb201".into(),
            importance_heatmap_svg(
                &random_importances(3, 6, 5),
                &titles,
                &nb201_edges,
                &nb201_ops,
                "NB201 (random)",
                &[],
            ),
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
