//! Helpers shared by the end-to-end tests.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

pub fn agnas() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agnas"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("agnas runs");
    assert!(out.status.success(), "agnas failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

// Not every test file expects failures.
#[allow(dead_code)]
pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("agnas runs");
    assert!(!out.status.success(), "agnas should have failed; stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A CIFAR-10 binary folder with `per_file` learnable images per training batch file and a test batch: each class
/// is a different brightness with some texture.
// Not every test file writes CIFAR folders.
#[allow(dead_code)]
pub fn write_cifar10(dir: &Path, per_file: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let record = |i: usize| {
        let class = (i % 10) as u8;
        let mut r = vec![class];
        r.extend((0..3072).map(|p| class * 25 + ((p * 7 + i) % 13) as u8));
        r
    };
    for f in 1..=5 {
        let bytes: Vec<u8> = (0..per_file).flat_map(|i| record(i + f * 1000)).collect();
        std::fs::write(dir.join(format!("data_batch_{f}.bin")), bytes).unwrap();
    }
    let test: Vec<u8> = (0..40).flat_map(record).collect();
    std::fs::write(dir.join("test_batch.bin"), test).unwrap();
}
