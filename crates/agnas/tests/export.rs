//! The exports against independent runtimes: the ONNX files run by tract (a pure-Rust ONNX runtime) and the
//! PyTorch files run by the project's torch, each compared with agnas's own logits at 1e-4, for the evaluation
//! network of every space. Batch-norm statistics and affine parameters are drawn at random first, so a wrong
//! epsilon, a swapped mean/variance or a bad fold shows.
use agnas::export::{self, Format, OnnxOptions, Shape};
use agnas::space::darts::Darts;
use agnas::space::nb201::Nb201;
use agnas::space::proxyless::Proxyless;
use agnas::space::{EvalNetwork, GenotypeFormat, Space};
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use tract_onnx::prelude::*;

const TOLERANCE: f64 = 1e-4;

struct Case {
    name: &'static str,
    vs: VarStore,
    net: Box<dyn EvalNetwork>,
    input: Shape,
}

fn case<S: Space>(name: &'static str, network: serde_json::Value, genotype: &str, side: i64) -> Case {
    tch::manual_seed(7);
    let cfg: S::Network = serde_json::from_value(network).expect("network config");
    let genotype = S::Genotype::parse(genotype).expect("genotype");
    let vs = VarStore::new(Device::Cpu);
    let net = S::build_network(&cfg, &genotype, &vs.root(), 3, 10);
    randomise_batch_norms(&vs);
    Case { name, vs, net, input: Shape { channels: 3, height: side, width: side } }
}

/// Running statistics and affine parameters away from their initial 0/1, as after training.
fn randomise_batch_norms(vs: &VarStore) {
    let opts = (Kind::Float, Device::Cpu);
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            let n = t.size()[0];
            let drawn = if name.ends_with("running_var") {
                Tensor::rand([n], opts) * 1.5 + 0.5
            } else if name.ends_with("running_mean") || (t.dim() == 1 && name.ends_with("bias")) {
                Tensor::rand([n], opts) - 0.5
            } else if t.dim() == 1 && name.ends_with("weight") {
                Tensor::rand([n], opts) + 0.5
            } else {
                continue;
            };
            t.copy_(&drawn);
        }
    });
}

fn cases() -> Vec<Case> {
    vec![
        case::<Nb201>(
            "nb201",
            serde_json::json!({ "channels": 8, "cells_per_stage": 2 }),
            "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",
            32,
        ),
        // The released AGNAS cells hold every DARTS op, and reduce cells put FactorizedReduce in skip_connect and
        // in the next cell's preprocessing.
        case::<Darts>("darts", serde_json::json!({ "channels": 8, "layers": 5 }), "agnas", 32),
        case::<Proxyless>("proxyless", serde_json::json!({ "width_mult": 1.0 }), "released", 64),
    ]
}

fn logits(c: &Case, x: &Tensor) -> Tensor {
    tch::no_grad(|| c.net.logits(x))
}

fn input(c: &Case, batch: i64) -> Tensor {
    tch::manual_seed(11);
    Tensor::randn([batch, 3, c.input.height, c.input.width], (Kind::Float, Device::Cpu))
}

fn tract_logits(path: &Path, x: &Tensor) -> Vec<f32> {
    let shape: Vec<usize> = x.size().iter().map(|&d| d as usize).collect();
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.with_input_fact(0, f32::fact(&shape).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .unwrap_or_else(|e| panic!("tract cannot run {}: {e:?}", path.display()));
    let data = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
    let input: tract_onnx::prelude::Tensor = tract_ndarray::ArrayD::from_shape_vec(shape, data).unwrap().into();
    let out = model.run(tvec!(input.into())).unwrap();
    out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect()
}

fn max_abs_diff(got: &[f32], want: &Tensor) -> f64 {
    let want = Vec::<f32>::try_from(want.flatten(0, -1)).unwrap();
    assert_eq!(got.len(), want.len(), "logit count");
    got.iter().zip(&want).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max)
}

#[test]
fn onnx_exports_run_in_tract_and_match_the_networks() {
    let dir = tempfile::tempdir().unwrap();
    for c in cases() {
        for (batch, fold) in [(None, false), (Some(3), true)] {
            let path = dir.path().join(format!("{}-{fold}.onnx", c.name));
            let format = Format::Onnx(OnnxOptions { batch, fold_batch_norms: fold, doc: String::new() });
            export::write(c.net.as_ref(), &c.vs, c.input, &format, &path, "test").unwrap();
            let x = input(&c, 3);
            let diff = max_abs_diff(&tract_logits(&path, &x), &logits(&c, &x));
            eprintln!("{} onnx (batch {batch:?}, fold {fold}): max |logit diff| {diff:.2e}", c.name);
            assert!(diff <= TOLERANCE, "{} (fold {fold}): tract differs from agnas by {diff:e}", c.name);
        }
    }
}

/// The project's Python environment (the one `scripts/setup-libtorch.sh` made for libtorch: torch + safetensors).
fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/setup-libtorch.sh")).output().expect("running scripts/setup-libtorch.sh");
    assert!(out.status.success(), "scripts/setup-libtorch.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("bin/python")
}

const COMPARE: &str = r#"
import importlib.util, sys, torch
from safetensors.torch import load_file
spec = importlib.util.spec_from_file_location("exported", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
net = module.load()
io = load_file(sys.argv[2])
with torch.no_grad():
    got = net(io["x"])
print(float((got - io["logits"]).abs().max()))
"#;

#[test]
fn pytorch_exports_load_in_torch_and_match_the_networks() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    for c in cases() {
        let path = dir.path().join(format!("{}.py", c.name));
        export::write(c.net.as_ref(), &c.vs, c.input, &Format::PyTorch, &path, "test").unwrap();
        let x = input(&c, 2);
        let io = dir.path().join(format!("{}-io.safetensors", c.name));
        Tensor::write_safetensors(&[("x", &x), ("logits", &logits(&c, &x))], &io).unwrap();
        let out = Command::new(&python).arg("-c").arg(COMPARE).arg(&path).arg(&io).output().unwrap();
        assert!(out.status.success(), "{}: {}", c.name, String::from_utf8_lossy(&out.stderr));
        let diff: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        eprintln!("{} pytorch: max |logit diff| {diff:.2e}", c.name);
        assert!(diff <= TOLERANCE, "{}: torch differs from agnas by {diff:e}", c.name);
    }
}

/// A network whose exported graph is not its forward: its logits doubled.
struct Wrong(Box<dyn EvalNetwork>);

impl agnas::nn::Export for Wrong {
    fn export(&self, g: &mut agnas::nn::Graph, x: agnas::nn::Value) -> agnas::nn::Value {
        let y = self.0.export(g, x);
        g.push(agnas::nn::graph::Op::Scale(2.0), &[y])
    }
}

impl EvalNetwork for Wrong {
    fn logits(&self, xs: &Tensor) -> Tensor {
        self.0.logits(xs)
    }
    fn training_logits(&self, xs: &Tensor) -> Tensor {
        self.0.training_logits(xs)
    }
}

#[test]
fn a_graph_that_differs_from_its_network_is_not_written() {
    let c = cases().swap_remove(0);
    let wrong = Wrong(c.net);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrong.onnx");
    let format = Format::Onnx(OnnxOptions { batch: None, fold_batch_norms: false, doc: String::new() });
    let err = export::write(&wrong, &c.vs, c.input, &format, &path, "test").unwrap_err();
    assert!(format!("{err:#}").contains("differ"), "{err:#}");
    assert!(!path.exists(), "nothing is written");
}
