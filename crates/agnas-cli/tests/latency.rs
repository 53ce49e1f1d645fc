//! `agnas latency-table`: the JSON's structure and that its check adds up (timings themselves are never asserted).
mod common;

use agnas::space::proxyless::arch::layer_shapes;
use agnas::space::proxyless::{LatencySpec, LatencyTable};
use common::{agnas, json, run_err, run_ok};
use serde_json::Value;

/// The OFA key of an MBConv written out from the layer table, independently of the library's formatter.
fn block_key(l: usize, k: usize, width_mult: f64, input: i64) -> String {
    let s = layer_shapes(width_mult, input)[l];
    let out = (s.size - 1) / s.stride + 1;
    let (kernel, expand) = ([3, 3, 5, 5, 7, 7][k], [3, 6][k % 2]);
    let idskip = u8::from(s.stride == 1 && s.inp == s.oup);
    format!(
        "expanded_conv-input:{0}x{0}x{1}-output:{2}x{2}x{3}-expand:{expand}-kernel:{kernel}-stride:{4}-idskip:{idskip}",
        s.size, s.inp, out, s.oup, s.stride
    )
}

#[test]
fn latency_table_covers_every_shape_and_checks_whole_networks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.json");
    let mut cmd = agnas();
    cmd.args([
        "latency-table",
        "--space",
        "proxyless",
        "--device",
        "cpu",
        "--image-size",
        "64",
        "--width-mult",
        "0.25",
    ])
    .args(["--repeats", "2", "--warmup", "1", "--check", "2", "--threads", "1", "--out"])
    .arg(&path);
    let out = run_ok(&mut cmd);
    let table = json(&path);
    let stdout: Value = serde_json::from_slice(&out.stdout).expect("stdout is the table's JSON");
    assert_eq!(stdout, table);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mean |relative error|"), "{stderr}");

    for (field, want) in [
        ("format", Value::from("agnas-latency-table/1")),
        ("space", "proxyless".into()),
        ("unit", "ms".into()),
        ("device", "cpu".into()),
        ("threads", 1.into()),
        ("batch_size", 1.into()),
        ("input", 64.into()),
        ("width_mult", 0.25.into()),
        ("num_classes", 1000.into()),
        ("warmup", 1.into()),
        ("repeats", 2.into()),
    ] {
        assert_eq!(table[field], want, "{field}");
    }
    for field in ["libtorch", "tch", "date", "identity", "channels_last"] {
        assert!(table.get(field).is_some(), "{field} missing");
    }
    assert_eq!(table["date"].as_str().unwrap().len(), "2026-11-30".len());

    let lut = table["lut"].as_object().unwrap();
    let entry = |key: &str| {
        let e = lut.get(key).unwrap_or_else(|| panic!("no entry {key}"));
        assert_eq!(e["count"], 2, "{key}");
        let (mean, std) = (e["mean"].as_f64().unwrap(), e["std"].as_f64().unwrap());
        assert!(mean >= 0.0 && std >= 0.0, "{key}: {e}");
        mean
    };
    // Every (layer, candidate) of the 21 layers, and `layers` lists them in candidate order.
    for l in 0..21 {
        for k in 0..6 {
            let key = block_key(l, k, 0.25, 64);
            entry(&key);
            assert_eq!(table["layers"][l][k], key.as_str(), "layer {l} candidate {k}");
        }
    }
    let pre = [
        "Conv-input:64x64x3-output:32x32x10",
        "expanded_conv-input:32x32x10-output:32x32x6-expand:1-kernel:3-stride:1-idskip:0",
    ];
    let post = ["Conv_1-input:2x2x108-output:2x2x1728", "Logits-input:2x2x1728-output:1000"];
    assert_eq!(table["fixed"]["PreProcessing"], serde_json::json!(pre));
    assert_eq!(table["fixed"]["PostProcessing"], serde_json::json!(post));
    let fixed: f64 = pre.iter().chain(&post).map(|k| entry(k)).sum();
    // Identical shapes once: 11 distinct layer shapes × 6 MBConvs, and the four fixed parts; nothing else.
    assert_eq!(lut.len(), 11 * 6 + 4);

    // The check: each architecture's prediction is the table's sum, its error relative to the measured forward.
    let check = &table["check"];
    let archs = check["archs"].as_array().unwrap();
    assert_eq!(archs.len(), 2);
    let mut errors = 0.0;
    for a in archs {
        let ids: Vec<i64> = a["arch"].as_str().unwrap().split(' ').map(|t| t.parse().unwrap()).collect();
        assert_eq!(ids.len(), 21);
        let blocks: f64 = ids
            .iter()
            .enumerate()
            .filter(|(_, &id)| id >= 0)
            .map(|(l, &id)| entry(&block_key(l, id as usize, 0.25, 64)))
            .sum();
        let (predicted, measured) = (a["predicted_ms"].as_f64().unwrap(), a["measured_ms"].as_f64().unwrap());
        assert!((predicted - (fixed + blocks)).abs() <= 1e-9 * predicted.max(1.0), "{a}");
        assert!(measured > 0.0 && a["measured_std_ms"].as_f64().unwrap() >= 0.0, "{a}");
        assert_eq!(a["count"], 2);
        let rel = a["relative_error"].as_f64().unwrap();
        assert!((rel - (predicted - measured) / measured).abs() < 1e-9, "{a}");
        errors += rel.abs();
    }
    assert!((check["mean_abs_relative_error"].as_f64().unwrap() - errors / 2.0).abs() < 1e-9);

    // The library reads it back and prices the network it was measured for.
    let loaded = LatencyTable::load(&path).unwrap();
    let costs = loaded.model(&LatencySpec { width_mult: 0.25, image_size: 64, num_classes: 1000 }).unwrap();
    assert!((costs.fixed - fixed).abs() < 1e-9);
    let err = loaded.model(&LatencySpec { width_mult: 0.5, image_size: 64, num_classes: 1000 }).unwrap_err();
    assert!(err.to_string().contains("rebuild it"), "{err}");
}

#[test]
fn latency_table_refuses_other_spaces_and_bad_shapes() {
    let err = run_err(agnas().args(["latency-table", "--space", "darts", "--check", "0"]));
    assert!(err.contains("only the proxyless space"), "{err}");
    let err =
        run_err(agnas().args(["latency-table", "--space", "proxyless", "--width-mult", "0.01", "--repeats", "1"]));
    assert!(err.contains("--width-mult"), "{err}");
    let err = run_err(agnas().args(["latency-table", "--space", "proxyless", "--repeats", "0"]));
    assert!(err.contains("--repeats"), "{err}");
}
