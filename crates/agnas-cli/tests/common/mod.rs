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

pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("agnas runs");
    assert!(!out.status.success(), "agnas should have failed; stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
