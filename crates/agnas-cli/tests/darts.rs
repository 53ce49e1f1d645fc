//! End-to-end tests of the DARTS space: search → genotype files and pictures → retrain → eval, resume, counts, errors.
mod common;

use common::{agnas, json, run_err, run_ok, write_cifar10};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn train_smoke(out: &Path, extra: &[&str]) -> Command {
    let mut cmd = agnas();
    cmd.args(["train", "--preset", "smoke", "--threads", "1", "--out"]).arg(out).args(extra);
    cmd
}

#[test]
fn search_then_retrain_then_eval() {
    let dir = tempfile::tempdir().unwrap();
    let search = dir.path().join("search");
    run_ok(agnas().args(["search", "--space", "darts", "--preset", "smoke", "--threads", "1", "--out"]).arg(&search));
    let genotype = json(&search.join("genotype.json"));
    assert_eq!(genotype["space"], "darts");
    assert_eq!(genotype["cells"].as_array().unwrap().len(), 5, "one genotype per supernet cell");
    assert_eq!(genotype["genotype"]["cells"].as_array().unwrap().len(), 5, "five stage slots");
    assert_eq!(genotype["stage_cells"], serde_json::json!(["Cell_0", "Cell_1", "Cell_2", "Cell_3", "Cell_4"]));
    // Each cell's picture: one box per state (2 inputs, 4 nodes, the output) and one labelled arrow per chosen op.
    for (i, cell) in genotype["cells"].as_array().unwrap().iter().enumerate() {
        let text = std::fs::read_to_string(search.join(format!("cell_{i}.svg"))).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("cell_{i}.svg: {e}"));
        let of_class = |class: &str| doc.descendants().filter(|n| n.attribute("class") == Some(class)).count();
        assert_eq!(of_class("node"), 7, "cell_{i}.svg");
        let ops = cell["ops"].as_array().unwrap();
        assert_eq!(of_class("op-edge"), ops.len(), "cell_{i}.svg");
        let mut labels: Vec<String> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("op-label"))
            .map(|n| n.text().unwrap().trim_end_matches(" /2").to_string())
            .collect();
        let mut chosen: Vec<String> = ops.iter().map(|p| p[0].as_str().unwrap().to_string()).collect();
        labels.sort();
        chosen.sort();
        assert_eq!(labels, chosen, "cell_{i}.svg draws the ops of Cell_{i}");
        assert!(
            doc.descendants().any(|n| n.text()
                == Some(&*format!(
                    "Cell_{i} ({}, C={})",
                    if cell["kind"] == "reduce" { "Reduce" } else { "Normal" },
                    cell["channels"]
                ))),
            "cell_{i}.svg title"
        );
    }
    let heatmap = std::fs::read_to_string(search.join("importance.svg")).unwrap();
    let doc = roxmltree::Document::parse(&heatmap).unwrap();
    let squares = doc.descendants().filter(|n| n.attribute("class") == Some("square")).count();
    assert_eq!(squares, 5 * 14 * 8, "one square per cell, edge and op");
    let importances = json(&search.join("importances.json"));
    let last = importances.as_array().unwrap().last().unwrap();
    assert_eq!(last["heldout"]["values"].as_array().unwrap().len(), 5);
    assert_eq!(last["heldout"]["values"][0].as_array().unwrap().len(), 14);
    // `none` wins no node input by default; the same importances with it allowed are reported beside.
    let found = json(&search.join("result.json"));
    assert!(!found["arch"].as_str().unwrap().contains("none"), "{}", found["arch"]);
    assert_eq!(
        (genotype["allow_none"].as_bool(), found["other_derivation"]["allow_none"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(found["other_derivation"]["arch"].as_str().unwrap().split(" / ").count(), 5);
    // The Python text of the search reads back as the same genotype.
    let shown = run_ok(agnas().args(["genotype", "show", "--to", "json"]).arg(search.join("genotype.py")));
    let from_python: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(from_python, genotype["genotype"]);

    let data = dir.path().join("cifar");
    write_cifar10(&data, 12);
    let train = dir.path().join("train");
    let stdout = run_ok(
        train_smoke(&train, &["--per-class", "0", "--epochs", "1"])
            .arg("--genotype")
            .arg(search.join("genotype.json"))
            .arg("--data")
            .arg(&data)
            .arg("--test-data")
            .arg(&data),
    );
    let printed: Value = serde_json::from_slice(&stdout.stdout).unwrap();
    let result = json(&train.join("result.json"));
    assert_eq!(printed, result);
    assert_eq!(result["test"]["images"], 40);
    for f in ["weights.safetensors", "model.json", "metrics.jsonl", "config.toml", "genotype.json"] {
        assert!(train.join(f).exists(), "{f}");
    }
    // Evaluating the saved weights (in batches of the smoke preset's size) gives the run's own test numbers.
    let eval = run_ok(
        agnas().args(["eval", "--threads", "1", "--batch-size", "32", "--run"]).arg(&train).arg("--data").arg(&data),
    );
    let metrics: Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(metrics, result["test"]);
    // The bare weights file with its genotype and shape (it holds the auxiliary head, which eval must accept).
    let bare = run_ok(
        agnas()
            .args(["eval", "--threads", "1", "--batch-size", "32", "--channels", "4", "--layers", "5", "--run"])
            .arg(train.join("weights.safetensors"))
            .arg("--genotype")
            .arg(train.join("genotype.json"))
            .arg("--data")
            .arg(&data),
    );
    assert_eq!(serde_json::from_slice::<Value>(&bare.stdout).unwrap(), result["test"]);
    // A run folder's model.json decides its network: flags that would change it are refused, not ignored.
    let err = run_err(agnas().args(["eval", "--channels", "8", "--run"]).arg(&train).arg("--data").arg(&data));
    assert!(err.contains("model.json"), "{err}");

    // A hand-edited model.json whose genotype reads a state that does not exist: an error naming the file and the
    // pair, not a panic while building the network.
    let edited = dir.path().join("edited");
    std::fs::create_dir(&edited).unwrap();
    for f in ["model.json", "weights.safetensors"] {
        std::fs::copy(train.join(f), edited.join(f)).unwrap();
    }
    let mut card = json(&edited.join("model.json"));
    card["genotype"]["cells"][0]["ops"][3][1] = 9.into();
    std::fs::write(edited.join("model.json"), serde_json::to_string(&card).unwrap()).unwrap();
    let err = run_err(agnas().args(["eval", "--threads", "1", "--run"]).arg(&edited).arg("--data").arg(&data));
    assert!(err.contains("model.json") && err.contains("genotype") && err.contains("reads state 9"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn retrain_resume_after_a_stop_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--genotype", "agnas", "--epochs", "2", "--checkpoint-every", "2", "--drop-path", "0.3"];
    let straight = dir.path().join("straight");
    run_ok(&mut train_smoke(&straight, &flags));
    let stopped = dir.path().join("stopped");
    // 120 training images / 16 = 8 steps per epoch: stop in epoch 2 after its checkpoint at step 4.
    let err = run_err(train_smoke(&stopped, &flags).args(["--stop-after-steps", "13"]));
    assert!(err.contains("stopped after 13 steps"), "{err}");
    run_ok(agnas().args(["train", "--resume"]).arg(&stopped));
    let read = |p: &Path| std::fs::read(p.join("weights.safetensors")).unwrap();
    assert_eq!(read(&stopped), read(&straight), "same weights after resuming");
    let strip = |p: &Path| {
        let mut v = json(&p.join("result.json"));
        v.as_object_mut().unwrap().remove("train_seconds");
        v
    };
    assert_eq!(strip(&stopped), strip(&straight));
    let err = run_err(&mut train_smoke(&straight, &flags));
    assert!(err.contains("already holds a run"), "{err}");
}

#[test]
fn params_prints_the_released_counts() {
    for (genotype, params) in [("agnas", 3_611_998), ("darts_v2", 3_349_342)] {
        let out = run_ok(agnas().args(["params", "--genotype", genotype]));
        let line: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["params"], params, "{genotype}");
        assert!(line["macs"].as_u64().unwrap() > 400_000_000, "{line}");
    }
}

#[test]
fn malformed_genotypes_point_at_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.py");
    std::fs::write(
        &path,
        "G = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_9x9', 1)], normal_concat=[2], \
         reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])\n",
    )
    .unwrap();
    let err = run_err(agnas().args(["genotype", "show"]).arg(&path));
    assert!(err.contains("bad.py") && err.contains("line 1, column 44") && err.contains("sep_conv_9x9"), "{err}");
    let err = run_err(agnas().args(["params", "--genotype", "nonexistent"]));
    assert!(err.contains("nonexistent") && err.contains("agnas, darts_v1, darts_v2"), "{err}");
    let out = dir.path().join("run");
    let err = run_err(&mut train_smoke(&out, &["--genotype", "agnas", "--drop-path", "1.5"]));
    assert!(err.contains("drop_path"), "{err}");
}

/// `agnas … | head` closes the pipe early: the output stops quietly instead of panicking.
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    let mut child = agnas()
        .args(["genotype", "show", "agnas", "--to", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before the genotype is written
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("panicked"), "{stderr}");
}
