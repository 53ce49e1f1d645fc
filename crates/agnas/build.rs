//! libtorch's run-time path, and the c10d bridge (`csrc/c10d.cpp`) compiled against the libtorch headers when the
//! `c10d` feature is on: Gloo always, NCCL with the `nccl` feature.
use std::path::{Path, PathBuf};

#[path = "../build-libtorch.rs"]
mod libtorch;

fn main() {
    let root = libtorch::link_libtorch();
    if std::env::var_os("CARGO_FEATURE_C10D").is_some() {
        if let Some(root) = root {
            c10d(&root);
        }
    }
}

/// Where Gloo's headers are: `GLOO_INCLUDE_DIR`, else the system's (Debian's `libgloo-dev`). The wheel does not
/// ship them, and libtorch's `ProcessGroupGloo.hpp` includes them.
fn gloo_include() -> PathBuf {
    println!("cargo:rerun-if-env-changed=GLOO_INCLUDE_DIR");
    let dir = std::env::var_os("GLOO_INCLUDE_DIR").map_or_else(|| PathBuf::from("/usr/include"), PathBuf::from);
    if !dir.join("gloo/algorithm.h").exists() {
        panic!(
            "the c10d bridge needs Gloo's headers, not found in {}: install Debian's libgloo-dev (`make setup` \
             does), set GLOO_INCLUDE_DIR, or build without the default feature `c10d`",
            dir.display()
        );
    }
    dir
}

fn c10d(root: &Path) {
    println!("cargo:rerun-if-changed=csrc/c10d.cpp");
    let include = root.join("include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file("csrc/c10d.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(gloo_include())
        .define("USE_C10D_GLOO", None)
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false);
    if std::env::var_os("CARGO_FEATURE_NCCL").is_some() {
        println!("cargo:rerun-if-env-changed=AGNAS_CUDA_HEADERS");
        build.define("USE_C10D_NCCL", None).define("USE_CUDA", None).define("AGNAS_NCCL", None);
        // The CUDA and NCCL headers of the wheel's nvidia packages, plus the two header-only wheels the NCCL
        // headers need (`AGNAS_CUDA_HEADERS`, which scripts/setup-nccl-headers.sh prints).
        let site = root.parent().map(Path::to_path_buf).unwrap_or_default();
        for dir in ["nvidia/cu13/include", "nvidia/nccl/include"] {
            build.include(site.join(dir));
        }
        if let Some(extra) = std::env::var_os("AGNAS_CUDA_HEADERS") {
            for dir in std::env::split_paths(&extra) {
                build.include(dir);
            }
        }
    }
    build.compile("agnas_c10d");
    println!("cargo:rustc-link-search=native={}", root.join("lib").display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if std::env::var_os("CARGO_FEATURE_NCCL").is_some() {
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
}
