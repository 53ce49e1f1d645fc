//! `agnas export` from a retrained run folder, and `agnas report … --out report.html` read back as XML: the page
//! parses, is self-contained, and its tables and figures hold the runs' numbers.
mod common;

use common::{agnas, json, run_err, run_ok};
use std::path::Path;

/// `agnas report RUN --out page`, read back and checked to be self-contained.
fn report(run: &Path, page: &Path) -> String {
    run_ok(agnas().arg("report").arg(run).arg("--out").arg(page));
    let text = std::fs::read_to_string(page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    self_contained(&text);
    text
}

fn parse(page: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    roxmltree::Document::parse_with_options(page, options).expect("the page is well-formed XML")
}

/// The texts of the table cells of the tables with `class`.
fn cells<'a>(doc: &'a roxmltree::Document, class: &str) -> Vec<&'a str> {
    doc.descendants()
        .filter(|n| n.has_tag_name("table") && n.attribute("class") == Some(class))
        .flat_map(|t| t.descendants().filter(|n| n.has_tag_name("td")))
        .map(|td| td.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect::<Vec<_>>().concat())
        .map(|s| Box::leak(s.into_boxed_str()) as &str)
        .collect()
}

fn self_contained(page: &str) {
    assert!(!page.contains("<script"), "no script");
    for attr in ["src=\"", "href=\"http", "url(http", "@import"] {
        assert!(!page.contains(attr), "the page refers outside itself: {attr}");
    }
}

#[test]
fn the_html_report_of_seeds_holds_their_numbers_curves_and_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("seeds");
    run_ok(agnas().args(["search", "--preset", "smoke", "--threads", "1", "--seeds", "0,1", "--out"]).arg(&parent));
    let page = report(&parent, &dir.path().join("report.html"));
    let doc = parse(&page);
    let runs = cells(&doc, "runs");
    for seed in [0, 1] {
        let result = json(&parent.join(format!("seed-{seed}/result.json")));
        let arch = result["arch"].as_str().unwrap();
        assert!(runs.contains(&arch), "the comparison lists {arch}: {runs:?}");
        let acc = result["bench201"]["c10_test"].as_f64().unwrap();
        assert!(runs.contains(&format!("{acc:.2}").as_str()), "c10_test {acc:.2} in {runs:?}");
    }
    let mean = (0..2)
        .map(|s| json(&parent.join(format!("seed-{s}/result.json")))["bench201"]["c10_test"].as_f64().unwrap())
        .sum::<f64>()
        / 2.0;
    let stats = cells(&doc, "stats");
    assert!(stats.contains(&format!("{mean:.2}").as_str()), "mean c10_test {mean:.2} in {stats:?}");
    let consensus = json(&parent.join("report.json"))["consensus"]["arch"].as_str().unwrap().to_string();
    assert!(page.contains(&consensus), "the consensus {consensus}");
    assert!(!cells(&doc, "votes").is_empty(), "the vote table");
    // Per run: loss, accuracy and LR curves, the importance heatmap and the cell; plus two overlays.
    let svgs = doc.descendants().filter(|n| n.tag_name().name() == "svg").count();
    assert!(svgs >= 2 * 5 + 2, "{svgs} figures");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for title in ["Loss", "Accuracy", "Learning rate", "Training loss, every run"] {
        assert!(texts.iter().any(|t| t.trim() == title), "a chart titled {title}");
    }
    assert!(page.contains("[importance]") && page.contains("resamples = 500"), "the configuration");
}

#[test]
fn a_retrained_run_reports_and_exports_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("train");
    run_ok(agnas().args(["train", "--preset", "smoke", "--threads", "1", "--out"]).arg(&run));
    let page = report(&run, &dir.path().join("train.html"));
    let doc = parse(&page);
    let result = json(&run.join("result.json"));
    let top1 = result["best_valid"]["top1"].as_f64().unwrap();
    assert!(cells(&doc, "result").iter().any(|c| c.parse::<f64>().is_ok_and(|v| (v - top1).abs() < 1e-3)));

    // Export defaults to the run folder; a second export does not overwrite without --force.
    let out = run_ok(agnas().args(["export", "--run"]).arg(&run));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["graph_max_abs_diff"].as_f64(), Some(0.0));
    let onnx = run.join("model.onnx");
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1000);
    let err = run_err(agnas().args(["export", "--run"]).arg(&run));
    assert!(err.contains("model.onnx exists") && err.contains("--force"), "{err}");
    // The spellings before the one vocabulary (--batch, --format, --checkpoint) still work, for old scripts.
    run_ok(agnas().args(["export", "--force", "--fold-bn", "--batch", "4", "--checkpoint"]).arg(&run));
    run_ok(agnas().args(["export", "--format", "pytorch", "--checkpoint"]).arg(&run));
    let source = std::fs::read_to_string(run.join("model.py")).unwrap();
    assert!(source.contains("class Network(nn.Module)"));
    assert!(!source.contains("import agnas") && !source.contains("from agnas"), "standalone");
    assert!(run.join("model.safetensors").exists());
    let err = run_err(agnas().args(["export", "--to", "pytorch", "--fold-bn", "--force", "--run"]).arg(&run));
    assert!(err.contains("ONNX options"), "{err}");
    let err = run_err(agnas().args(["export", "--space", "nb201", "--genotype", "6111"]));
    assert!(err.contains("--out"), "{err}");
    // Every file a user names follows one rule: an existing one is replaced only with --force; a missing folder is
    // created.
    let page = dir.path().join("train.html");
    let err = run_err(agnas().arg("report").arg(&run).arg("--out").arg(&page));
    assert!(err.contains("train.html exists") && err.contains("--force"), "{err}");
    run_ok(agnas().arg("report").arg(&run).arg("--force").arg("--out").arg(&page));
    let nested = dir.path().join("exp/deeper/net.py");
    run_ok(agnas().args(["export", "--to", "pytorch", "--run"]).arg(&run).arg("--out").arg(&nested));
    assert!(nested.exists() && nested.with_extension("safetensors").exists());
    let pictures = dir.path().join("pictures");
    run_ok(agnas().args(["genotype", "plot", "agnas", "--out"]).arg(&pictures));
    let err = run_err(agnas().args(["genotype", "plot", "agnas", "--out"]).arg(&pictures));
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    run_ok(agnas().args(["genotype", "plot", "agnas", "--force", "--out"]).arg(&pictures));
}
