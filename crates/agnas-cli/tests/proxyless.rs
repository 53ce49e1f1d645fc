//! The ProxylessNAS macro space from the command line: acceptance numbers, refused ids, budgeted selection from one
//! search.
mod common;

use common::{agnas, json, run_err, run_ok};
use serde_json::Value;

fn stdout_json(out: std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

const RELEASED: &str = "1 1 -1 2 1 -1 5 1 1 -1 5 1 1 -1 1 4 3 -1 5 5 5";

/// Spec §5.3.2: the released architecture and model.py's alternative, params and FLOPs by the official table rule
/// and by agnas's own MACs.
#[test]
fn params_and_flops_of_the_released_architectures() {
    let released = stdout_json(run_ok(agnas().args(["params", "--space", "proxyless", "--arch", RELEASED])));
    assert_eq!(released["params"], 6_728_936);
    assert_eq!(released["flops"], 660_857_816);
    assert_eq!(released["macs"], 659_130_816);
    assert!(released["flops_rule"].as_str().unwrap().contains("(2·in − 1)·out"), "{released}");
    let alternative = "0 3 2 2 5 0 2 4 3 3 5 0 5 1 3 -1 5 5 5 2 0";
    let alt = stdout_json(run_ok(agnas().args(["params", "--arch", alternative])));
    assert_eq!(
        (alt["space"].as_str(), &alt["params"], &alt["flops"]),
        (Some("proxyless"), &6_776_504.into(), &688_263_320.into())
    );
}

#[test]
fn a_skip_where_the_layer_changes_shape_is_refused() {
    let bad = "1 1 -1 2 -1 -1 5 1 1 -1 5 1 1 -1 1 4 3 -1 5 5 5";
    let err = run_err(agnas().args(["params", "--space", "proxyless", "--arch", bad]));
    assert!(err.contains("layer 4") && err.contains("cannot be skipped"), "{err}");
}

/// One smoke search; its front, and the best architecture under budgets derived again from the same run.
#[test]
fn one_search_gives_the_whole_budget_front() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("search");
    run_ok(agnas().args(["search", "--space", "proxyless", "--preset", "smoke", "--threads", "1", "--out"]).arg(&run));
    for picture in ["arch.svg", "attention.svg", "importance.svg", "front.svg"] {
        assert!(run.join(picture).is_file(), "{picture}");
    }
    let front: Vec<Value> = serde_json::from_value(json(&run.join("front.json"))).unwrap();
    let flops: Vec<u64> = front.iter().map(|p| p["flops"].as_u64().unwrap()).collect();
    let scores: Vec<f64> = front.iter().map(|p| p["score"].as_f64().unwrap()).collect();
    assert!(flops.windows(2).all(|w| w[0] < w[1]) && scores.windows(2).all(|w| w[0] < w[1]), "{flops:?} {scores:?}");
    // The plain argmax is the front's best point.
    let genotype = json(&run.join("genotype.json"));
    assert_eq!(genotype["arch"], front.last().unwrap()["arch"]);

    // Under a budget between two front points, the cheaper one: the best architecture that fits.
    let k = front.len() / 2;
    let budget = (flops[k] + flops[k + 1]) / 2;
    let derived =
        stdout_json(run_ok(agnas().args(["genotype", "derive", "--max-flops", &budget.to_string()]).arg(&run)));
    assert_eq!(derived["arch"], front[k]["arch"]);
    let arch = derived["arch"].as_str().unwrap();
    let counted = stdout_json(run_ok(agnas().args(["params", "--space", "proxyless", "--arch", arch])));
    assert_eq!(counted["flops"].as_u64().unwrap(), flops[k], "FLOPs of the chosen architecture, counted again");

    let err = run_err(agnas().args(["genotype", "derive", "--max-flops", "1e6"]).arg(&run));
    assert!(err.contains(&format!("cheapest architecture of the space, {} M FLOPs", flops[0] as f64 / 1e6)), "{err}");

    // The same under a latency budget, priced by a table measured here.
    let table = dir.path().join("latency.json");
    run_ok(
        agnas()
            .args(["latency-table", "--space", "proxyless", "--repeats", "1", "--warmup", "0", "--check", "0"])
            .args(["--threads", "1", "--out"])
            .arg(&table),
    );
    let with_table = dir.path().join("latency");
    let table_flag = ["--latency-table", table.to_str().unwrap()];
    run_ok(agnas().args(["genotype", "derive"]).args(table_flag).arg(&run).arg("--out").arg(&with_table));
    // Files a derivation wrote are replaced only with --force.
    let again = run_err(agnas().args(["genotype", "derive"]).args(table_flag).arg(&run).arg("--out").arg(&with_table));
    assert!(again.contains("genotype.json exists") && again.contains("--force"), "{again}");
    run_ok(agnas().args(["genotype", "derive", "--force"]).args(table_flag).arg(&run).arg("--out").arg(&with_table));
    let front: Vec<Value> = serde_json::from_value(json(&with_table.join("front_latency_ms.json"))).unwrap();
    let ms: Vec<f64> = front.iter().map(|p| p["latency_ms"].as_f64().unwrap()).collect();
    assert!(ms.windows(2).all(|w| w[0] < w[1]), "{ms:?}");
    let k = front.len() / 2;
    let budget = (ms[k] + ms[k + 1]) / 2.0;
    let derived = stdout_json(run_ok(
        agnas().args(["genotype", "derive", "--max-latency-ms", &budget.to_string()]).args(table_flag).arg(&run),
    ));
    assert_eq!(derived["arch"], front[k]["arch"]);
    let err = run_err(agnas().args(["genotype", "derive", "--max-latency-ms", "5"]).arg(&run));
    assert!(err.contains("needs derive.latency_table"), "{err}");
}
