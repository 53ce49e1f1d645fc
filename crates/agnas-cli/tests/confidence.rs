//! Decision confidence, importance over time and `--until-decided`, end to end on the embedded images.
mod common;

use common::{agnas, json, run_err, run_ok};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Enough held-out batches for a bootstrap (200 held-out images in batches of 32) and six epochs.
const FLAGS: &[&str] = &["--per-class", "40", "--epochs", "6", "--heldout-every", "1"];

fn search(out: &Path, extra: &[&str]) -> Command {
    let mut cmd = agnas();
    cmd.args(["search", "--space", "nb201", "--preset", "smoke", "--threads", "1", "--out"]).arg(out).args(FLAGS);
    cmd.args(extra);
    cmd
}

fn choices(confidence: &Value) -> Vec<&str> {
    confidence["decisions"].as_array().unwrap().iter().map(|d| d["choice"].as_str().unwrap()).collect()
}

fn all_at_least(confidence: &Value, p: f64) -> bool {
    confidence["decisions"].as_array().unwrap().iter().all(|d| d["confidence"].as_f64().is_some_and(|c| c >= p))
}

/// The 1-based epoch whose pass `--until-decided p` stops at, read off a run with a pass every epoch.
fn decided_at(passes: &[Value], p: f64) -> Option<usize> {
    passes.windows(2).find_map(|w| {
        let (a, b) = (&w[0]["confidence"], &w[1]["confidence"]);
        (choices(a) == choices(b) && all_at_least(a, p) && all_at_least(b, p))
            .then(|| w[1]["epoch"].as_u64().unwrap() as usize)
    })
}

#[test]
fn every_pass_reports_decisions_confidence_and_rank_correlation() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    run_ok(&mut search(&out, &[]));
    let result = json(&out.join("result.json"));
    let confidence = &result["confidence"];
    // One decision per edge, in arch-string order, choosing the ops of the found cell.
    let arch: agnas::space::nb201::Arch = result["arch"].as_str().unwrap().parse().unwrap();
    assert_eq!(choices(confidence), arch.ops.iter().map(|o| o.name()).collect::<Vec<_>>());
    let free = arch.ops.iter().filter(|o| o.parameter_free()).count() as f64 / 6.0;
    assert_eq!(confidence["parameter_free_share"].as_f64().unwrap(), free);
    assert_eq!(confidence["batches"], 7, "200 held-out images in batches of 32");
    for d in confidence["decisions"].as_array().unwrap() {
        let p = d["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{d}");
        assert!(d["margin"].as_f64().unwrap() >= 0.0, "the winner leads its runner-up: {d}");
        assert_ne!(d["choice"], d["runner_up"]);
    }
    let unsure: Vec<&Value> = confidence["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["confidence"].as_f64().unwrap() < 0.9)
        .map(|d| &d["point"])
        .collect();
    assert_eq!(confidence["unsure"].as_array().unwrap().iter().collect::<Vec<_>>(), unsure);
    // The warnings of the terminal are in result.json and summary.md too: the unsure decisions by name, and the
    // parameter-free share where it is above the default 0.5.
    let warnings: Vec<&str> = result["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert_eq!(warnings.len(), usize::from(!unsure.is_empty()) + usize::from(free > 0.5), "{warnings:?}");
    for point in &unsure {
        assert!(warnings[0].contains(point.as_str().unwrap()), "{warnings:?}");
    }
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("Decision confidence"));
    assert_eq!(summary.matches("**Warning:**").count(), warnings.len(), "{summary}");
    let svg = std::fs::read_to_string(out.join("importance.svg")).unwrap();
    assert!(svg.contains("class=\"note\"") && svg.contains("architecture"), "the picture states the confidence");

    // Every pass has its confidence; every pass but the first its rank correlation with the one before.
    let passes = json(&out.join("importances.json"));
    let passes = passes.as_array().unwrap();
    assert_eq!(passes.len(), 6);
    assert!(passes[0].get("rank_correlation").is_none());
    for pass in &passes[1..] {
        let rho = pass["rank_correlation"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&rho), "{rho}");
    }
    assert_eq!(&passes[5]["confidence"], confidence, "the result's confidence is the last pass's");

    // The kept per-batch importances add up to the pass's, and `genotype derive` bootstraps them to the same numbers.
    let rows = tch::Tensor::read_safetensors(out.join("heldout_batches.safetensors")).unwrap();
    let (name, rows) = &rows[0];
    assert_eq!((name.as_str(), rows.size()[0]), ("importance", 7));
    let total = rows.sum_dim_intlist(0, false, tch::Kind::Double);
    let expected: Vec<f64> =
        serde_json::from_value::<Vec<Vec<Vec<f64>>>>(passes[5]["heldout"]["values"].clone()).unwrap().concat().concat();
    let summed = Vec::<f64>::try_from(total.flatten(0, -1)).unwrap();
    for (a, b) in summed.iter().zip(&expected) {
        assert!((a - b).abs() <= 1e-9 * b.abs(), "{a} vs {b}");
    }
    let again = dir.path().join("again");
    run_ok(agnas().args(["genotype", "derive"]).arg(&out).arg("--out").arg(&again));
    assert_eq!(std::fs::read(again.join("importance.svg")).unwrap(), svg.as_bytes());
}

#[test]
fn until_decided_stops_where_the_full_run_first_decided_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    run_ok(&mut search(&full, &[]));
    let passes = json(&full.join("importances.json"));
    let passes = passes.as_array().unwrap();
    let p = 0.8;
    let k = decided_at(passes, p).expect("the smoke search decides at 0.8 within six epochs");
    assert!(k < 6, "decided before the budget");

    let until = dir.path().join("until");
    run_ok(&mut search(&until, &["--until-decided", "0.8"]));
    let result = json(&until.join("result.json"));
    assert_eq!((result["stopped"].as_str(), result["epochs"].as_u64()), (Some("decided"), Some(k as u64)));
    // Up to the stop it is the same run: the same importances, and the architecture of that pass.
    let stopped = json(&until.join("importances.json"));
    assert_eq!(stopped.as_array().unwrap()[..], passes[..k]);
    assert_eq!(choices(&result["confidence"]), choices(&passes[k - 1]["confidence"]));
    assert_eq!(json(&full.join("result.json"))["stopped"], "epochs");

    // Killed in the epoch after the first pass (13 steps an epoch), resumed: the same decided run.
    let resumed = dir.path().join("resumed");
    let err = run_err(&mut search(&resumed, &["--until-decided", "0.8", "--stop-after-steps", "20"]));
    assert!(err.contains("stopped after 20 steps"), "{err}");
    run_ok(agnas().args(["search", "--resume"]).arg(&resumed));
    assert_eq!(json(&resumed.join("importances.json")), stopped);
    assert_eq!(json(&resumed.join("genotype.json")), json(&until.join("genotype.json")));
    // A resumed finished run does not train on.
    run_ok(agnas().args(["search", "--resume"]).arg(&until));
    assert_eq!(json(&until.join("result.json"))["epochs"], k);
}

#[test]
fn until_decided_needs_passes_during_the_search() {
    let dir = tempfile::tempdir().unwrap();
    // Asked for alone, it gets a held-out pass every epoch; with the passes turned off, it is refused.
    let decided = dir.path().join("decided");
    run_ok(
        agnas()
            .args(["search", "--preset", "smoke", "--threads", "1", "--until-decided", "0.9", "--out"])
            .arg(&decided),
    );
    let epochs = json(&decided.join("importances.json"));
    assert!(epochs.as_array().unwrap().iter().all(|e| !e["heldout"].is_null()), "a held-out pass every epoch");
    let err = run_err(
        agnas()
            .args(["search", "--preset", "smoke", "--until-decided", "0.9", "--heldout-every", "0", "--out"])
            .arg(dir.path().join("r")),
    );
    assert!(err.contains("importance.until_decided") && err.contains("importance.every"), "{err}");
    let err = run_err(agnas().args(["search", "--preset", "smoke", "--until-decided", "1.5"]));
    assert!(err.contains("between 0 and 1"), "{err}");
}

#[test]
fn several_seeds_make_one_folder_with_a_report_and_a_consensus() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("seeds");
    let seeds = || {
        let mut cmd = agnas();
        cmd.args(["search", "--preset", "smoke", "--threads", "1", "--per-class", "40", "--seeds", "3,5", "--out"]);
        cmd.arg(&parent);
        cmd
    };
    let printed = String::from_utf8(run_ok(&mut seeds()).stdout).unwrap();
    let results: Vec<Value> = [3, 5].iter().map(|s| json(&parent.join(format!("seed-{s}/result.json")))).collect();
    assert_eq!((results[0]["seed"].as_u64(), results[1]["seed"].as_u64()), (Some(3), Some(5)));
    let report = json(&parent.join("report.json"));
    let stat = |m: &str| report["stats"].as_array().unwrap().iter().find(|s| s["metric"] == m).cloned().unwrap();
    let c10: Vec<f64> = results.iter().map(|r| r["bench201"]["c10_test"].as_f64().unwrap()).collect();
    let c10_stat = stat("bench201.c10_test");
    assert_eq!(c10_stat["n"], 2);
    assert!((c10_stat["mean"].as_f64().unwrap() - (c10[0] + c10[1]) / 2.0).abs() < 1e-9);
    assert!((c10_stat["std"].as_f64().unwrap() - (c10[0] - c10[1]).abs() / 2f64.sqrt()).abs() < 1e-9);
    // The consensus is an architecture of the space, each choice made by at least one seed.
    let consensus = &report["consensus"];
    let arch: agnas::space::nb201::Arch = consensus["arch"].as_str().unwrap().parse().unwrap();
    for (i, vote) in consensus["votes"].as_array().unwrap().iter().enumerate() {
        assert_eq!(vote["choice"], arch.ops[i].name());
        let made: Vec<&Value> = results.iter().map(|r| &r["confidence"]["decisions"][i]["choice"]).collect();
        assert!(made.contains(&&vote["choice"]), "{vote}");
        let agreeing = made.iter().filter(|c| ***c == vote["choice"]).count() as f64 / 2.0;
        assert_eq!(vote["agreement"].as_f64().unwrap(), agreeing);
    }
    assert_eq!(std::fs::read_to_string(parent.join("report.md")).unwrap(), printed);
    // `agnas report` on the folder says the same; run again, the finished seeds are kept.
    let again = run_ok(agnas().args(["report"]).arg(&parent).arg("--out").arg(dir.path().join("r.json")));
    assert_eq!(String::from_utf8(again.stdout).unwrap(), printed);
    assert_eq!(json(&dir.path().join("r.json")), report);
    let before = std::fs::read(parent.join("seed-3/result.json")).unwrap();
    let err = String::from_utf8(run_ok(&mut seeds()).stderr).unwrap();
    assert!(err.contains("seed 3: finished before"), "{err}");
    assert_eq!(std::fs::read(parent.join("seed-3/result.json")).unwrap(), before);

    let darts = dir.path().join("darts");
    run_ok(agnas().args(["search", "--space", "darts", "--preset", "smoke", "--threads", "1", "--out"]).arg(&darts));
    let err = run_err(agnas().arg("report").arg(&parent).arg(&darts));
    assert!(err.contains("different spaces"), "{err}");
    let err = run_err(agnas().arg("report").arg(dir.path()));
    assert!(err.contains("neither a run nor seed-"), "{err}");
}

#[test]
fn random_baseline_keeps_the_best_candidate_on_validation_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("random");
    let random = |out: &Path, extra: &[&str]| {
        let mut cmd = agnas();
        cmd.args(["baseline", "random", "--preset", "smoke", "--threads", "1", "--seed", "4", "--out"]).arg(out);
        cmd.args(extra);
        cmd
    };
    let printed: Value =
        serde_json::from_slice(&run_ok(&mut random(&out, &["--budget-minutes", "60", "--max-candidates", "3"])).stdout)
            .unwrap();
    let lines = std::fs::read_to_string(out.join("candidates.jsonl")).unwrap();
    let candidates: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(candidates.len(), 3);
    let best =
        candidates.iter().reduce(|b, c| if c["valid_acc"].as_f64() > b["valid_acc"].as_f64() { c } else { b }).unwrap();
    let result = json(&out.join("result.json"));
    assert_eq!(printed, result);
    assert_eq!(
        (&result["arch"], &result["valid_acc"], &result["candidates"]),
        (&best["arch"], &best["valid_acc"], &Value::from(3))
    );
    let arch: agnas::space::nb201::Arch = result["arch"].as_str().unwrap().parse().unwrap();
    let record = agnas::space::nb201::bench::table().by_arch(&arch).unwrap();
    assert_eq!(result["bench201"]["c10_test"].as_f64().unwrap(), record.c10_test);
    let free = ["skip_connect", "avg_pool_3x3"].iter().map(|op| result["arch"].as_str().unwrap().matches(op).count());
    assert_eq!(result["parameter_free_share"].as_f64().unwrap(), free.sum::<usize>() as f64 / 6.0);
    for c in &candidates {
        assert!(!c["arch"].as_str().unwrap().contains("none"), "drawn from what the search derives: {c}");
        let trained = json(&out.join(format!("candidates/{:04}/result.json", c["index"].as_u64().unwrap())));
        assert_eq!(trained["final_valid"]["top1"], c["valid_acc"]);
    }
    // No budget: the first candidate alone.
    let once = dir.path().join("once");
    run_ok(&mut random(&once, &["--budget-minutes", "0"]));
    let first = std::fs::read_to_string(once.join("candidates.jsonl")).unwrap();
    assert_eq!(first.lines().count(), 1);
    assert_eq!(serde_json::from_str::<Value>(first.lines().next().unwrap()).unwrap()["arch"], candidates[0]["arch"]);

    // Stopped after its second candidate: resumed, it draws and trains the same third one.
    std::fs::remove_file(out.join("result.json")).unwrap();
    let two: String = lines.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(out.join("candidates.jsonl"), two).unwrap();
    std::fs::remove_dir_all(out.join("candidates/0002")).unwrap();
    run_ok(agnas().args(["baseline", "random", "--resume"]).arg(&out));
    let again = json(&out.join("result.json"));
    assert_eq!((&again["arch"], &again["valid_acc"]), (&result["arch"], &result["valid_acc"]));
    let err = run_err(agnas().args(["baseline", "random", "--preset", "smoke"]));
    assert!(err.contains("--budget-minutes"), "{err}");
}

/// `--budget-of RUN`: the search's own seconds are the budget; a search of other images (another subset, or the same
/// folder split with another seed) or of another space, a folder that holds no search result, and both budgets at once
/// are refused.
#[test]
fn random_baseline_takes_the_budget_of_a_search() {
    let dir = tempfile::tempdir().unwrap();
    let search = dir.path().join("search");
    let smoke = ["--preset", "smoke", "--threads", "1"];
    let search_cmd = ["search", "--space", "nb201", "--epochs", "1", "--per-class", "20"];
    run_ok(agnas().args(search_cmd).args(smoke).arg("--out").arg(&search));
    let seconds = json(&search.join("result.json"))["train_seconds"].as_f64().unwrap();
    let random = |out: &str, per_class: &str, extra: &[&str]| {
        let mut cmd = agnas();
        cmd.args(["baseline", "random", "--max-candidates", "1", "--per-class", per_class]).args(smoke).args(extra);
        cmd.arg("--out").arg(dir.path().join(out));
        cmd
    };
    let budget_of = ["--budget-of", search.to_str().unwrap()];
    run_ok(&mut random("random", "20", &budget_of));
    let result = json(&dir.path().join("random/result.json"));
    assert_eq!(result["budget_minutes"].as_f64().unwrap(), seconds / 60.0);

    let err = run_err(&mut random("other-images", "30", &budget_of));
    assert!(err.contains("searched other images") && err.contains("data.per_class: 20 there, 30 here"), "{err}");
    let err = run_err(&mut random("other-seed", "20", &[&budget_of[..], &["--seed", "1"]].concat()));
    assert!(err.contains("searched other images") && err.contains("seed: 0 there, 1 here"), "{err}");
    let err = run_err(&mut random("darts", "20", &[&budget_of[..], &["--space", "darts"]].concat()));
    assert!(err.contains("searched the nb201 space, this baseline draws from darts"), "{err}");
    let not_search = dir.path().join("random");
    let err = run_err(&mut random("of-random", "20", &["--budget-of", not_search.to_str().unwrap()]));
    assert!(err.contains("is not the result of a search"), "{err}");
    let err = run_err(&mut random("both", "20", &[&budget_of[..], &["--budget-minutes", "1"]].concat()));
    assert!(err.contains("cannot be used with"), "{err}");
}
