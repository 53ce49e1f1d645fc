//! Every registered space end to end: search → derive again → params → train → eval. Registering a space in
//! `SpaceName` is what gets it tested here.
mod common;

use agnas::space::SpaceName;
use common::{agnas, json, run_err, run_ok, write_cifar10};
use serde_json::Value;
use std::path::Path;
use strum::VariantNames;

fn stdout_json(out: std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The scalars of nested JSON lists.
fn leaves(v: &Value) -> Vec<&Value> {
    match v.as_array() {
        Some(items) => items.iter().flat_map(leaves).collect(),
        None => vec![v],
    }
}

fn pipeline(space: &str, dir: &Path) {
    let search = dir.join("search");
    run_ok(agnas().args(["search", "--space", space, "--preset", "smoke", "--threads", "1", "--out"]).arg(&search));
    let genotype = json(&search.join("genotype.json"));
    assert_eq!(genotype["space"], space);

    // The genotype derived again from the run folder's importances.json is the one the search wrote.
    let again = stdout_json(run_ok(agnas().args(["genotype", "derive"]).arg(&search)));
    assert_eq!(again, genotype, "{space}: re-derived from importances.json");

    // Every search draws its importances: one square per candidate of the last held-out pass (a space whose
    // decision points have different numbers of candidates writes which exist as `mask`).
    let importances = json(&search.join("importances.json"));
    let heldout = &importances.as_array().unwrap().last().unwrap()["heldout"];
    let count = match heldout.get("mask") {
        Some(mask) => leaves(mask).into_iter().filter(|v| v.as_bool().unwrap()).count(),
        None => leaves(&heldout["values"]).len(),
    };
    let heatmap = std::fs::read_to_string(search.join("importance.svg")).unwrap();
    assert_eq!(heatmap.matches("class=\"square\"").count(), count, "{space}: importance.svg");

    // Every space states its decisions, and they are the derived architecture's choices.
    let result = json(&search.join("result.json"));
    let choices: Vec<&str> = result["confidence"]["decisions"]
        .as_array()
        .unwrap_or_else(|| panic!("{space}: no decisions in result.json"))
        .iter()
        .map(|d| d["choice"].as_str().unwrap())
        .collect();
    assert_eq!(choices, architecture_choices(space, &genotype), "{space}");
    assert!(result["confidence"]["parameter_free_share"].as_f64().is_some(), "{space}");
    // A report on this one run votes its own architecture back together from the decisions.
    let report = dir.join("report.json");
    run_ok(agnas().arg("report").arg(&search).arg("--out").arg(&report));
    let shown = run_ok(agnas().args(["genotype", "show", "--to", "text"]).arg(search.join("genotype.json")));
    assert_eq!(
        json(&report)["consensus"]["arch"].as_str().unwrap(),
        String::from_utf8(shown.stdout).unwrap().trim_end()
    );

    // From here on no --space: the genotype files say which space they belong to.
    let genotype_file = search.join("genotype.json");
    let params = stdout_json(run_ok(agnas().args(["params", "--genotype"]).arg(&genotype_file)));
    assert_eq!(params["space"], space);
    assert!(params["params"].as_i64().unwrap() > 0 && params["macs"].as_u64().unwrap() > 0, "{params}");

    let data = dir.join("cifar");
    write_cifar10(&data, 12);
    let train = dir.join("train");
    let result = stdout_json(run_ok(
        agnas()
            .args(["train", "--preset", "smoke", "--per-class", "0", "--epochs", "1", "--threads", "1"])
            .arg("--genotype")
            .arg(&genotype_file)
            .arg("--data")
            .arg(&data)
            .arg("--test-data")
            .arg(&data)
            .arg("--out")
            .arg(&train),
    ));
    assert_eq!(result["test"]["images"], 40, "{space}");
    let card = json(&train.join("model.json"));
    assert_eq!(card["space"], space);
    // The retrain's own genotype.json (no `space` key) still finds its space, and reads back as the search's.
    let shown =
        stdout_json(run_ok(agnas().args(["genotype", "show", "--to", "json"]).arg(train.join("genotype.json"))));
    assert_eq!(shown, card["genotype"], "{space}");
    // The counts of the trained network are the ones `params` gives for its shape.
    let mut shape = vec!["params".to_string(), "--genotype".into(), genotype_file.display().to_string()];
    shape.extend(["--image-size", "32", "--num-classes", "10"].map(String::from));
    for (key, value) in card["network"].as_object().unwrap() {
        if ["channels", "layers", "cells_per_stage", "width_mult"].contains(&key.as_str()) {
            shape.extend([format!("--{}", key.replace('_', "-")), value.to_string()]);
        }
    }
    let counted = stdout_json(run_ok(agnas().args(&shape)));
    assert_eq!((&counted["params"], &counted["macs"]), (&result["params"], &result["macs"]), "{space}");
    let eval = stdout_json(run_ok(
        agnas().args(["eval", "--threads", "1", "--batch-size", "32", "--run"]).arg(&train).arg("--data").arg(&data),
    ));
    assert_eq!(eval, result["test"], "{space}: eval of the saved weights gives the run's own test numbers");
    // In bf16 (fp32 weights, bf16 maps) the same images score within bf16's rounding of that.
    let low = stdout_json(run_ok(
        agnas()
            .args(["eval", "--threads", "1", "--batch-size", "32", "--precision", "bf16", "--run"])
            .arg(&train)
            .arg("--data")
            .arg(&data),
    ));
    let (loss, low_loss) = (eval["loss"].as_f64().unwrap(), low["loss"].as_f64().unwrap());
    assert!((low_loss - loss).abs() <= 0.02 * loss, "{space}: bf16 loss {low_loss} against {loss}");
    assert_ne!(low_loss, loss, "{space}: the evaluation ran in bf16");
    assert_eq!(low["images"], eval["images"]);
}

/// The choices a derived genotype is made of, written as the space's decisions name them.
fn architecture_choices(space: &str, genotype: &Value) -> Vec<String> {
    let strings = |v: &Value| v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    match space {
        // `|op~0|+|op~0|op~1|+…`: the ops of the six edges.
        "nb201" => genotype["arch"]
            .as_str()
            .unwrap()
            .split('|')
            .filter(|t| !t.is_empty() && *t != "+")
            .map(|t| t.split('~').next().unwrap().to_string())
            .collect(),
        // Per stage cell and node, its two (op, input) pairs in input order.
        "darts" => genotype["genotype"]["cells"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|cell| {
                let pairs: Vec<(u64, String)> = cell["ops"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[1].as_u64().unwrap(), format!("{}~{}", p[0].as_str().unwrap(), p[1])))
                    .collect();
                pairs
                    .chunks(2)
                    .map(|node| {
                        let mut node = node.to_vec();
                        node.sort();
                        node.into_iter().map(|(_, p)| p).collect::<Vec<_>>().join(",")
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        "proxyless" => strings(&genotype["blocks"]),
        other => panic!("no rule for the decisions of {other}: add one"),
    }
}

#[test]
fn every_registered_space_searches_derives_counts_trains_and_evaluates() {
    assert!(SpaceName::VARIANTS.len() >= 2, "{:?}", SpaceName::VARIANTS);
    for space in SpaceName::VARIANTS {
        let dir = tempfile::tempdir().unwrap();
        pipeline(space, dir.path());
    }
}

#[test]
fn an_unknown_space_is_refused_with_the_registered_ones() {
    for command in [&["search", "--space", "nowhere"][..], &["params", "--space", "nowhere"]] {
        let err = run_err(agnas().args(command));
        assert!(err.contains("unknown space `nowhere`"), "{err}");
        for space in SpaceName::VARIANTS {
            assert!(err.contains(space), "{space} missing from: {err}");
        }
    }
}

/// Where a command names its space twice, the two must agree.
#[test]
fn a_space_flag_against_a_config_file_of_another_space_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nb201.toml");
    std::fs::write(&config, "space = \"nb201\"\n").unwrap();
    for command in ["search", "train"] {
        let err = run_err(agnas().args([command, "--space", "darts", "--config"]).arg(&config));
        assert!(err.contains("--space darts") && err.contains("nb201.toml"), "{command}: {err}");
    }
    // A genotype of another space, as a search's genotype.json or as text, names both spaces.
    let arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|";
    let genotype = dir.path().join("genotype.json");
    std::fs::write(&genotype, format!("{{\"space\": \"nb201\", \"arch\": \"{arch}\"}}")).unwrap();
    let err = run_err(agnas().args(["train", "--space", "darts", "--preset", "smoke", "--genotype"]).arg(&genotype));
    assert!(err.contains("genotype.json is nb201, not darts"), "{err}");
    let err = run_err(agnas().args(["params", "--space", "proxyless", "--arch", arch]));
    assert!(err.contains("is nb201, not proxyless") && err.contains("give --space nb201"), "{err}");
}
