//! libtorch's run-time path, and the C++ compiled against the libtorch headers: the fused gated sum
//! (`csrc/gated_sum*.cpp`) always, and the c10d bridge (`csrc/c10d.cpp`) when the `c10d` feature is on: Gloo always,
//! NCCL with the `nccl` feature.
use std::path::{Path, PathBuf};

#[path = "../build-libtorch.rs"]
mod libtorch;

fn main() {
    let Some(root) = libtorch::link_libtorch() else {
        return;
    };
    gated_sum(&root);
    if std::env::var_os("CARGO_FEATURE_C10D").is_some() {
        c10d(&root);
    }
    println!("cargo:rustc-link-search=native={}", root.join("lib").display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if std::env::var_os("CARGO_FEATURE_NCCL").is_some() {
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
}

/// A C++17 build against the libtorch headers, with the ABI the wheel was built with.
fn libtorch_build(root: &Path) -> cc::Build {
    let include = root.join("include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false);
    build
}

/// The fused gated sum: the autograd function, and its kernels once per instruction set that ATen dispatches to
/// (its own flags for each), so that the binary runs on any x86-64 CPU and uses the widest vectors it has. The
/// kernels use ATen's OpenMP `parallel_for` (the process's one libgomp, which libtorch loads), and no contraction
/// of a multiply and an add that the code does not ask for, so that they round as the ops they replace.
fn gated_sum(root: &Path) {
    for file in ["csrc/gated_sum.cpp", "csrc/gated_sum.h", "csrc/gated_sum_kernels.cpp"] {
        println!("cargo:rerun-if-changed={file}");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let x86 = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "x86_64");
    let sets: &[(&str, &[&str])] = &[
        ("DEFAULT", &[]),
        ("AVX2", &["-mavx2", "-mfma", "-mf16c"]),
        ("AVX512", &["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma"]),
    ];
    for &(set, flags) in sets {
        let mut build = libtorch_build(root);
        build
            .file("csrc/gated_sum_kernels.cpp")
            .out_dir(out.join(format!("gated-{set}")))
            .define("CPU_CAPABILITY", set)
            .opt_level(3)
            .flag("-fopenmp")
            .flag("-ffp-contract=off");
        // Elsewhere the x86 sets build as more copies of the default code, which ATen never selects.
        if x86 && set != "DEFAULT" {
            build.define(&format!("CPU_CAPABILITY_{set}"), None);
            for flag in flags {
                build.flag(flag);
            }
        }
        build.compile(&format!("agnas_gated_{}", set.to_lowercase()));
    }
    libtorch_build(root).file("csrc/gated_sum.cpp").compile("agnas_gated");
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
    let mut build = libtorch_build(root);
    build.file("csrc/c10d.cpp").include(gloo_include()).define("USE_C10D_GLOO", None);
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
}
