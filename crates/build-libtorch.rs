//! Shared build script of the workspace crates: makes the binaries and test executables find libtorch at run
//! time (rpath) and keeps libtorch_cuda linked even though no symbol of it is referenced directly, so that
//! `Device::cuda_if_available` sees the GPU (tch-rs issue 980). The library's own build script (the c10d bridge)
//! calls [`link_libtorch`] as a module.
use std::{env, path::PathBuf};

#[allow(dead_code)]
fn main() {
    link_libtorch();
}

/// Emits the link arguments; returns the libtorch folder (the wheel's `torch` package), if `LIBTORCH` names one.
pub fn link_libtorch() -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=../build-libtorch.rs");
    let Some(root) = env::var_os("LIBTORCH") else {
        println!("cargo:warning=LIBTORCH is not set: run scripts/setup-libtorch.sh (make setup) first");
        return None;
    };
    let root = PathBuf::from(root);
    let root = root.canonicalize().unwrap_or(root);
    if let Some(version) = libtorch_version(&root) {
        println!("cargo:rustc-env=AGNAS_LIBTORCH_VERSION={version}");
    }
    let lib = root.join("lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    Some(root)
}

/// The version of the libtorch at `root`: the torch wheel's `version.py` (`__version__ = '2.11.0+cu130'`) or a
/// standalone libtorch's `build-version`.
fn libtorch_version(root: &std::path::Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        let line = text.lines().find(|l| l.starts_with("__version__"))?;
        return Some(line.split_once('=')?.1.trim().trim_matches(|c| c == '\'' || c == '"').to_string());
    }
    std::fs::read_to_string(root.join("build-version")).ok().map(|v| v.trim().to_string())
}
