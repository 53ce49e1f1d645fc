//! Parity with PyTorch: every building block, the supernets and the evaluation networks, forward and backward,
//! against fixtures written by `tools/make_fixtures.py` (inputs, weights, outputs, gradients, BN running statistics),
//! within 1e-4 relative.
use agnas::nn::init::{batch_norm2d, conv2d};
use agnas::nn::layers::ConvSpec;
use agnas::nn::ops::{
    DilConv, FactorizedReduce, Identity, Pool, PoolKind, ReLUConvBN, ResNetBasicBlock, SepConv, Zero,
};
use agnas::nn::{Node, SeAttention};
use agnas::space::darts;
use agnas::space::nb201::supernet::mixed_op;
use agnas::space::nb201::{Arch, Combine, Nb201Config, Nb201Network, Nb201NetworkConfig, Nb201Supernet};
use agnas::train::settings::{to_channels_last, vars_to_channels_last};
use std::collections::HashMap;
use std::path::PathBuf;
use tch::nn::{self, ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

const TOLERANCE: f64 = 1e-4;

struct Fixture {
    name: String,
    tensors: HashMap<String, Tensor>,
}

impl Fixture {
    fn load(case: &str) -> Fixture {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{case}.safetensors"));
        let tensors = Tensor::read_safetensors(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Fixture { name: case.to_string(), tensors: tensors.into_iter().collect() }
    }

    fn get(&self, key: &str) -> &Tensor {
        self.tensors.get(key).unwrap_or_else(|| panic!("{}: no `{key}` in fixture", self.name))
    }

    fn prefixed(&self, prefix: &str) -> Vec<(String, &Tensor)> {
        let mut v: Vec<_> =
            self.tensors.iter().filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t))).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Copies `p.*` into the store and checks that both sides have exactly the same names and shapes.
    fn load_params(&self, vs: &VarStore) {
        let vars = vs.variables();
        let fixture = self.prefixed("p.");
        let mut theirs: Vec<&str> = fixture.iter().map(|(n, _)| n.as_str()).collect();
        let mut ours: Vec<&str> = vars.keys().map(|k| k.as_str()).collect();
        theirs.sort();
        ours.sort();
        assert_eq!(ours, theirs, "{}: parameter names differ from PyTorch's", self.name);
        tch::no_grad(|| {
            for (name, t) in fixture {
                let mut v = vars[&name].shallow_clone();
                assert_eq!(v.size(), t.size(), "{}: shape of {name}", self.name);
                v.copy_(t);
            }
        });
    }
}

fn assert_close(case: &str, what: &str, got: &Tensor, want: &Tensor) {
    assert_close_above(case, what, got, want, 1e-6);
}

/// `got` within [`TOLERANCE`] of `want`, relative to `want`'s largest magnitude or `floor`, whichever is larger.
fn assert_close_above(case: &str, what: &str, got: &Tensor, want: &Tensor, floor: f64) {
    assert_eq!(got.size(), want.size(), "{case}: shape of {what}");
    let got = got.to_kind(Kind::Double);
    let want = want.to_kind(Kind::Double);
    let scale = want.abs().max().double_value(&[]).max(floor);
    let diff = (&got - &want).abs().max().double_value(&[]);
    assert!(diff / scale <= TOLERANCE, "{case}: {what} differs by {diff:e} (scale {scale:e})");
}

/// Forward in train mode, backward of `(y * gy).sum()`, running stats, then eval mode.
fn check_module(case: &str, build: impl FnOnce(nn::Path) -> Box<dyn ModuleT>) {
    let f = Fixture::load(case);
    let vs = VarStore::new(Device::Cpu);
    let module = build(vs.root());
    f.load_params(&vs);
    let x = f.get("x").set_requires_grad(true);
    let y = module.forward_t(&x, true);
    assert_close(case, "y", &y, f.get("y"));
    (&y * f.get("gy")).sum(Kind::Float).backward();
    assert_close(case, "gx", &x.grad(), f.get("gx"));
    check_grads_and_stats(&f, &vs);
    if let Some(want) = f.tensors.get("y_eval") {
        let y_eval = tch::no_grad(|| module.forward_t(&x, false));
        assert_close(case, "y_eval", &y_eval, want);
    }
}

fn check_grads_and_stats(f: &Fixture, vs: &VarStore) {
    let vars = vs.variables();
    let grads = f.prefixed("g.");
    let trainable = vars.values().filter(|v| v.requires_grad()).count();
    assert_eq!(grads.len(), trainable, "{}: gradient count", f.name);
    // A gradient that is zero in exact arithmetic (a BN shift before a training-mode BN) is rounding noise of the
    // network's gradients, which differs between CPUs' kernels: any gradient may differ by one epsilon of the largest.
    let largest = grads.iter().map(|(_, g)| g.abs().max().double_value(&[])).fold(0.0, f64::max);
    for (name, want) in &grads {
        let epsilon = if want.kind() == Kind::Double { f64::EPSILON } else { f64::from(f32::EPSILON) };
        let floor = (epsilon / TOLERANCE * largest).max(1e-6);
        assert_close_above(&f.name, &format!("grad of {name}"), &vars[name].grad(), want, floor);
    }
    for (name, want) in f.prefixed("rs.") {
        assert_close(&f.name, &format!("running stat {name}"), &vars[&name], want);
    }
}

macro_rules! module_cases {
    ($($case:ident => $build:expr;)*) => {
        $(
            #[test]
            fn $case() {
                check_module(stringify!($case), $build);
            }
        )*
    };
}

module_cases! {
    conv_dw_dil => |p| Box::new(conv2d(p, 8, 8, 3, ConvSpec::default().padding(2).dilation(2).groups(8)));
    conv_grouped_bias => |p| Box::new(conv2d(p, 8, 12, 3, ConvSpec::stride(2).padding(1).groups(4).bias(true)));
    bn_affine => |p| Box::new(batch_norm2d(p, 6, true));
    bn_noaffine => |p| Box::new(batch_norm2d(p, 6, false));
    relu6 => |_| Box::new(nn::func(|x| x.relu6()));
    avg_pool_s1 => |_| Box::new(Pool { kind: PoolKind::Avg, stride: 1 });
    avg_pool_s2 => |_| Box::new(Pool { kind: PoolKind::Avg, stride: 2 });
    max_pool_s1 => |_| Box::new(Pool { kind: PoolKind::Max, stride: 1 });
    max_pool_s2 => |_| Box::new(Pool { kind: PoolKind::Max, stride: 2 });
    zero_s1 => |_| Box::new(Zero { stride: 1 });
    zero_s2 => |_| Box::new(Zero { stride: 2 });
    identity => |_| Box::new(Identity);
    factorized_reduce => |p| Box::new(FactorizedReduce::new(p, 8, 8, false));
    relu_conv_bn_1x1 => |p| Box::new(ReLUConvBN::new(p, 8, 8, 1, ConvSpec::default(), false));
    relu_conv_bn_3x3_affine => |p| Box::new(ReLUConvBN::new(p, 8, 8, 3, ConvSpec::default().padding(1), true));
    sep_conv_3x3_s1 => |p| Box::new(SepConv::new(p, 8, 8, 3, 1, false));
    sep_conv_3x3_s2 => |p| Box::new(SepConv::new(p, 8, 8, 3, 2, false));
    sep_conv_5x5_s1 => |p| Box::new(SepConv::new(p, 8, 8, 5, 1, false));
    dil_conv_3x3_s1 => |p| Box::new(DilConv::new(p, 8, 8, 3, 1, 2, false));
    dil_conv_5x5_s2 => |p| Box::new(DilConv::new(p, 8, 8, 5, 2, 2, false));
    resnet_block => |p| Box::new(ResNetBasicBlock::new(p, 8, 16, 2));
}

#[derive(Debug)]
struct Gates(SeAttention);

impl ModuleT for Gates {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        self.0.gates(xs)
    }
}

#[test]
fn se_attention() {
    check_module("se_attention", |p| Box::new(Gates(SeAttention::new(p, 40, 8))));
}

#[test]
fn mixed_op_nb201() {
    let f = Fixture::load("mixed_op_nb201");
    let vs = VarStore::new(Device::Cpu);
    let cfg = Nb201Config { channels: 8, cells_per_stage: 1, combine: Combine::Sum, ..Nb201Config::default() };
    let op = mixed_op(vs.root(), 8, &cfg);
    f.load_params(&vs);
    let x = f.get("x").set_requires_grad(true);
    let out = op.forward_t(&Node::new(x.shallow_clone()), true);
    assert_close(&f.name, "y", &out.out, f.get("y"));
    assert_close(&f.name, "importance", &out.importance, f.get("importance"));
    (&out.out * f.get("gy")).sum(Kind::Float).backward();
    assert_close(&f.name, "gx", &x.grad(), f.get("gx"));
    check_grads_and_stats(&f, &vs);
}

/// The fixture's input in the layout the weights were put in.
fn input(f: &Fixture, channels_last: bool) -> Tensor {
    if channels_last {
        to_channels_last(f.get("x"))
    } else {
        f.get("x").shallow_clone()
    }
}

#[test]
fn nb201_supernet_forward_backward() {
    for channels_last in [false, true] {
        nb201_supernet_case(channels_last);
    }
}

fn nb201_supernet_case(channels_last: bool) {
    let f = Fixture::load("nb201_supernet");
    let vs = VarStore::new(Device::Cpu);
    let cfg = Nb201Config { channels: 8, cells_per_stage: 1, combine: Combine::Sum, ..Nb201Config::default() };
    let net = Nb201Supernet::new(&vs.root(), &cfg, 3, 10);
    f.load_params(&vs);
    if channels_last {
        vars_to_channels_last(&vs);
    }
    let out = net.forward_t(&input(&f, channels_last), true);
    assert_close(&f.name, "logits", &out.logits, f.get("y"));
    assert_close(&f.name, "importance", &out.importance, f.get("importance"));
    let loss = out.logits.cross_entropy_for_logits(f.get("labels"));
    assert_close(&f.name, "loss", &loss.reshape([1]), f.get("loss"));
    loss.backward();
    check_grads_and_stats(&f, &vs);
}

#[test]
fn mixed_op_darts() {
    for (case, stride) in [("mixed_op_darts_s1", 1), ("mixed_op_darts_s2", 2)] {
        let f = Fixture::load(case);
        let vs = VarStore::new(Device::Cpu);
        let op = darts::supernet::mixed_op(vs.root(), 4, stride, 8);
        f.load_params(&vs);
        let x = f.get("x").set_requires_grad(true);
        let out = op.forward_t(&Node::new(x.shallow_clone()), true);
        assert_close(case, "y", &out.out, f.get("y"));
        assert_close(case, "importance", &out.importance, f.get("importance"));
        (&out.out * f.get("gy")).sum(Kind::Float).backward();
        assert_close(case, "gx", &x.grad(), f.get("gx"));
        check_grads_and_stats(&f, &vs);
    }
}

#[test]
fn darts_supernet_forward_backward() {
    for channels_last in [false, true] {
        darts_supernet_case(channels_last);
    }
}

fn darts_supernet_case(channels_last: bool) {
    let f = Fixture::load("darts_supernet");
    let vs = VarStore::new(Device::Cpu);
    let cfg = darts::DartsConfig { channels: 2, layers: 5, ..Default::default() };
    let net = darts::DartsSupernet::new(&vs.root(), &cfg, 3, 10);
    f.load_params(&vs);
    if channels_last {
        vars_to_channels_last(&vs);
    }
    let out = net.forward_t(&input(&f, channels_last), true);
    assert_close(&f.name, "logits", &out.logits, f.get("y"));
    assert_close(&f.name, "importance", &out.importance, f.get("importance"));
    let loss = out.logits.cross_entropy_for_logits(f.get("labels"));
    assert_close(&f.name, "loss", &loss.reshape([1]), f.get("loss"));
    loss.backward();
    check_grads_and_stats(&f, &vs);
    let y_eval = tch::no_grad(|| net.forward_t(&input(&f, channels_last), false).logits);
    assert_close(&f.name, "y_eval", &y_eval, f.get("y_eval"));
}

/// The evaluation network in training (with the auxiliary loss when it has the head), then in eval mode.
fn check_network(case: &str, genotype: &str, auxiliary: bool) {
    let f = Fixture::load(case);
    let vs = VarStore::new(Device::Cpu);
    let cfg = darts::NetworkConfig { channels: 4, layers: 5, auxiliary, ..Default::default() };
    let net = darts::NetworkCifar::new(&vs.root(), &cfg, &darts::Genotype::builtin(genotype).unwrap(), 3, 10);
    f.load_params(&vs);
    let out = net.forward_t(f.get("x"), true, 0.0);
    assert_close(case, "logits", &out.logits, f.get("y"));
    let labels = f.get("labels");
    let main = out.logits.cross_entropy_for_logits(labels);
    let loss = match (&out.aux, f.tensors.get("y_aux")) {
        (Some(aux), Some(want)) => {
            assert_close(case, "aux logits", aux, want);
            main + 0.4 * aux.cross_entropy_for_logits(labels)
        }
        (None, None) => main,
        _ => panic!("{case}: auxiliary head present on one side only"),
    };
    assert_close(case, "loss", &loss.reshape([1]), f.get("loss"));
    loss.backward();
    check_grads_and_stats(&f, &vs);
    let y_eval = tch::no_grad(|| net.forward_t(f.get("x"), false, 0.0).logits);
    assert_close(case, "y_eval", &y_eval, f.get("y_eval"));
}

#[test]
fn darts_network_agnas() {
    check_network("darts_network_agnas", "agnas", true);
}

#[test]
fn darts_network_darts_v2() {
    check_network("darts_network_darts_v2", "darts_v2", false);
}

/// The NB201 evaluation network (the benchmark's `TinyNetwork`, C = 8, N = 1) in training, then in eval mode.
fn check_nb201_network(case: &str, arch: &Arch) {
    let f = Fixture::load(case);
    let vs = VarStore::new(Device::Cpu);
    let cfg = Nb201NetworkConfig { channels: 8, cells_per_stage: 1 };
    let net = Nb201Network::new(&vs.root(), &cfg, arch, 3, 10);
    f.load_params(&vs);
    let logits = net.forward_t(f.get("x"), true);
    assert_close(case, "logits", &logits, f.get("y"));
    let loss = logits.cross_entropy_for_logits(f.get("labels"));
    assert_close(case, "loss", &loss.reshape([1]), f.get("loss"));
    loss.backward();
    check_grads_and_stats(&f, &vs);
    let y_eval = tch::no_grad(|| net.forward_t(f.get("x"), false));
    assert_close(case, "y_eval", &y_eval, f.get("y_eval"));
}

#[test]
fn nb201_network_6111() {
    check_nb201_network("nb201_network_6111", &agnas::space::nb201::bench::table().by_index(6111).unwrap().arch);
}

/// Node 1 has only `none` inputs and feeds a conv: the zero node stays in the graph (zero gradients, BN statistics).
#[test]
fn nb201_network_none() {
    let arch = "|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|";
    check_nb201_network("nb201_network_none", &arch.parse().unwrap());
}

/// A names-and-shapes file of full-size networks (`tools/make_fixtures.py`).
fn names_file(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// PyTorch's state_dict keys and shapes of network `key` of a names file, BN counters aside, sorted.
fn pytorch_shapes(json: &serde_json::Value, key: &str) -> Vec<(String, Vec<i64>)> {
    let mut v: Vec<(String, Vec<i64>)> = serde_json::from_value(json[key]["state_dict"].clone()).unwrap();
    v.retain(|(n, _)| !n.ends_with("num_batches_tracked"));
    v.sort();
    v
}

/// The variables of `vs` with their shapes, sorted.
fn ours(vs: &VarStore) -> Vec<(String, Vec<i64>)> {
    let mut v: Vec<_> = vs.variables().into_iter().map(|(n, t)| (n, t.size())).collect();
    v.sort();
    v
}

/// The fixture's parameters and running statistics as an official checkpoint converted to safetensors: DDP's
/// `module.` prefix and BN's `num_batches_tracked` counters.
fn official_checkpoint(f: &Fixture, dir: &std::path::Path) -> PathBuf {
    let mut state: Vec<(String, Tensor)> = Vec::new();
    for (name, t) in f.prefixed("p.") {
        let t = f.tensors.get(&format!("rs.{name}")).unwrap_or(t);
        state.push((format!("module.{name}"), t.shallow_clone()));
        if let Some(bn) = name.strip_suffix(".running_mean") {
            state.push((format!("module.{bn}.num_batches_tracked"), Tensor::from(1i64)));
        }
    }
    let path = dir.join(format!("{}.safetensors", f.name));
    Tensor::write_safetensors(&state, &path).unwrap();
    path
}

/// The full-size networks have PyTorch's state_dict keys and shapes (BN's `num_batches_tracked` aside), so released
/// checkpoints load by name.
#[test]
fn darts_full_size_names_and_shapes_match_pytorch() {
    let json = names_file("darts_network_names.json");
    let shapes = |key: &str| pytorch_shapes(&json, key);
    for name in ["agnas", "darts_v2"] {
        let vs = VarStore::new(Device::Cpu);
        let g = darts::Genotype::builtin(name).unwrap();
        let _net = darts::NetworkCifar::new(&vs.root(), &darts::NetworkConfig::default(), &g, 3, 10);
        assert_eq!(ours(&vs), shapes(name), "{name}");
        assert_eq!(darts::network::count_params(&vs), json[name]["params_excluding_aux"].as_i64().unwrap());
    }
    let vs = VarStore::new(Device::Cpu);
    let _net = darts::DartsSupernet::new(&vs.root(), &darts::DartsConfig::default(), 3, 10);
    assert_eq!(ours(&vs), shapes("supernet"), "supernet");
}

/// A PyTorch state_dict saved as safetensors (DataParallel `module.` prefix, `num_batches_tracked` counters, running
/// statistics after training) loads by name and evaluates to PyTorch's eval-mode logits.
#[test]
fn pytorch_state_dict_loads_and_evaluates() {
    let f = Fixture::load("darts_network_agnas");
    let dir = tempfile::tempdir().unwrap();
    let path = official_checkpoint(&f, dir.path());
    let vs = VarStore::new(Device::Cpu);
    let cfg = darts::NetworkConfig { channels: 4, layers: 5, auxiliary: true, ..Default::default() };
    let net = darts::NetworkCifar::new(&vs.root(), &cfg, &darts::Genotype::builtin("agnas").unwrap(), 3, 10);
    agnas::nn::weights::load(&vs, &path).unwrap();
    let y_eval = tch::no_grad(|| net.forward_t(f.get("x"), false, 0.0).logits);
    assert_close(&f.name, "y_eval from loaded weights", &y_eval, f.get("y_eval"));
}

/// The macro space's fixtures were computed in float64 (their README says why): the Rust side runs in double too.
mod proxyless {
    use super::*;
    use agnas::space::proxyless::blocks::{ConvInit, MbConv};
    use agnas::space::proxyless::{
        arch, Arch, LayerShape, MbConvKind, ProxylessConfig, ProxylessNetwork, ProxylessNetworkConfig,
        ProxylessSupernet, SearchBlock,
    };
    use agnas::train::cross_entropy;

    const WIDTH: f64 = 0.1;

    /// A store in double precision holding the fixture's parameters, and the input as a leaf in double.
    fn double(f: &Fixture, vs: &mut VarStore) -> Tensor {
        vs.double();
        f.load_params(vs);
        f.get("x").to_kind(Kind::Double).set_requires_grad(true)
    }

    fn check_mbconv(case: &str, inp: i64, oup: i64, kind: MbConvKind, stride: i64) {
        let f = Fixture::load(case);
        let mut vs = VarStore::new(Device::Cpu);
        let block = MbConv::new(vs.root(), inp, oup, kind, stride, ConvInit::FanOutNormal);
        let x = double(&f, &mut vs);
        let y = block.forward_t(&x, true);
        assert_close(case, "y", &y, f.get("y"));
        (&y * f.get("gy").to_kind(Kind::Double)).sum(Kind::Double).backward();
        assert_close(case, "gx", &x.grad(), f.get("gx"));
        check_grads_and_stats(&f, &vs);
        assert_close(case, "y_eval", &tch::no_grad(|| block.forward_t(&x, false)), f.get("y_eval"));
    }

    #[test]
    fn proxyless_mbconvs() {
        check_mbconv("proxyless_mbconv_k3e3_s2", 8, 12, MbConvKind::of(0), 2);
        check_mbconv("proxyless_mbconv_k7e6_s1", 8, 8, MbConvKind::of(5), 1);
        check_mbconv("proxyless_mbconv_k3e1", 8, 6, MbConvKind { kernel: 3, expand: 1 }, 1);
    }

    /// The importance (7,) of our block against the fixture's (candidates,): the same values, zero beyond.
    fn assert_importance(case: &str, what: &str, got: &Tensor, want: &Tensor) {
        let n = want.size()[want.dim() - 1];
        assert_close(case, what, &got.narrow(-1, 0, n), want);
        let rest = got.narrow(-1, n, arch::MAX_CANDIDATES as i64 - n);
        assert_eq!(rest.abs().sum(Kind::Double).double_value(&[]), 0.0, "{case}: {what} beyond the candidates");
    }

    /// A search block: the folded fast path against the official concatenation (values, importances, gradients).
    fn check_block(case: &str, shape: LayerShape) {
        let f = Fixture::load(case);
        let mut vs = VarStore::new(Device::Cpu);
        let block = SearchBlock::new(&vs.root(), shape, 16);
        let x = double(&f, &mut vs);
        let (y, importance) = block.forward_t(&x, true);
        assert_close(case, "y", &y, f.get("y"));
        assert_importance(case, "importance", &importance, f.get("importance"));
        (&y * f.get("gy").to_kind(Kind::Double)).sum(Kind::Double).backward();
        assert_close(case, "gx", &x.grad(), f.get("gx"));
        check_grads_and_stats(&f, &vs);
        let (y_eval, importance_eval) = tch::no_grad(|| block.forward_t(&x, false));
        assert_close(case, "y_eval", &y_eval, f.get("y_eval"));
        assert_importance(case, "importance_eval", &importance_eval, f.get("importance_eval"));
    }

    #[test]
    fn proxyless_search_blocks() {
        check_block("proxyless_block_identity", LayerShape { inp: 8, oup: 8, stride: 1, size: 0 });
        check_block("proxyless_block_s2", LayerShape { inp: 8, oup: 12, stride: 2, size: 0 });
    }

    #[test]
    fn proxyless_supernet_forward_backward() {
        let f = Fixture::load("proxyless_supernet");
        let mut vs = VarStore::new(Device::Cpu);
        let cfg = ProxylessConfig { width_mult: WIDTH, ..Default::default() };
        let net = ProxylessSupernet::new(&vs.root(), &cfg, 3, 10);
        let x = double(&f, &mut vs);
        let out = net.forward_t(&x, true);
        assert_close(&f.name, "logits", &out.logits, f.get("y"));
        assert_importance(&f.name, "importance", &out.importance, f.get("importance"));
        let loss = cross_entropy(&out.logits, f.get("labels"), 0.1);
        assert_close(&f.name, "loss", &loss.reshape([1]), f.get("loss"));
        loss.backward();
        check_grads_and_stats(&f, &vs);
        let eval = tch::no_grad(|| net.forward_t(&x, false));
        assert_close(&f.name, "y_eval", &eval.logits, f.get("y_eval"));
        assert_importance(&f.name, "importance_eval", &eval.importance, f.get("importance_eval"));
    }

    /// The released architecture's retrain network (the fixture has dropout 0, so that train mode is comparable).
    #[test]
    fn proxyless_network_released() {
        let f = Fixture::load("proxyless_network");
        let mut vs = VarStore::new(Device::Cpu);
        let cfg = ProxylessNetworkConfig { width_mult: WIDTH, dropout: 0.0 };
        let net = ProxylessNetwork::new(&vs.root(), &cfg, &Arch::parse(arch::AGNAS).unwrap(), 3, 10);
        let x = double(&f, &mut vs);
        let logits = net.forward_t(&x, true);
        assert_close(&f.name, "logits", &logits, f.get("y"));
        let loss = cross_entropy(&logits, f.get("labels"), 0.1);
        assert_close(&f.name, "loss", &loss.reshape([1]), f.get("loss"));
        loss.backward();
        check_grads_and_stats(&f, &vs);
        assert_close(&f.name, "y_eval", &tch::no_grad(|| net.forward_t(&x, false)), f.get("y_eval"));
    }

    /// The full-size supernet and retrain networks hold PyTorch's state_dict keys and shapes, so official
    /// checkpoints load by name; the parameter counts are the spec's.
    #[test]
    fn proxyless_full_size_names_and_shapes_match_pytorch() {
        let json = names_file("proxyless_names.json");
        let shapes = |key: &str| pytorch_shapes(&json, key);
        let trainable = |vs: &VarStore| -> i64 {
            vs.variables().values().filter(|t| t.requires_grad()).map(|t| t.numel() as i64).sum()
        };
        let vs = VarStore::new(Device::Cpu);
        let _net = ProxylessSupernet::new(&vs.root(), &ProxylessConfig::default(), 3, 1000);
        assert_eq!(ours(&vs), shapes("supernet"), "supernet");
        assert_eq!(trainable(&vs), 30_778_976);
        for (key, arch, params) in
            [("released", arch::AGNAS, 6_728_936), ("alternative", arch::MODEL_PY_ALTERNATIVE, 6_776_504)]
        {
            let vs = VarStore::new(Device::Cpu);
            let cfg = ProxylessNetworkConfig::default();
            let _net = ProxylessNetwork::new(&vs.root(), &cfg, &Arch::parse(arch).unwrap(), 3, 1000);
            assert_eq!(ours(&vs), shapes(key), "{key}");
            assert_eq!(trainable(&vs), params, "{key}");
        }
    }
}

/// Official macro checkpoints (DDP's `module.` prefix, BN counters), converted to safetensors, load by name into
/// the supernet and the retrain network and evaluate to PyTorch's eval-mode outputs.
#[test]
fn proxyless_official_checkpoints_load_by_name() {
    use agnas::space::proxyless::ProxylessSupernet;
    use agnas::space::proxyless::{arch, Arch, ProxylessConfig, ProxylessNetwork, ProxylessNetworkConfig};
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = |f: &Fixture| official_checkpoint(f, dir.path());
    let x = |f: &Fixture| f.get("x").to_kind(Kind::Double);

    let f = Fixture::load("proxyless_supernet");
    let mut vs = VarStore::new(Device::Cpu);
    let net = ProxylessSupernet::new(&vs.root(), &ProxylessConfig { width_mult: 0.1, ..Default::default() }, 3, 10);
    vs.double();
    agnas::nn::weights::load(&vs, &checkpoint(&f)).unwrap();
    let eval = tch::no_grad(|| net.forward_t(&x(&f), false));
    assert_close(&f.name, "y_eval from the loaded supernet", &eval.logits, f.get("y_eval"));

    let f = Fixture::load("proxyless_network");
    let mut vs = VarStore::new(Device::Cpu);
    let cfg = ProxylessNetworkConfig { width_mult: 0.1, dropout: 0.2 };
    let net = ProxylessNetwork::new(&vs.root(), &cfg, &Arch::parse(arch::AGNAS).unwrap(), 3, 10);
    vs.double();
    agnas::nn::weights::load(&vs, &checkpoint(&f)).unwrap();
    let y_eval = tch::no_grad(|| net.forward_t(&x(&f), false));
    assert_close(&f.name, "y_eval from the loaded network", &y_eval, f.get("y_eval"));
}
