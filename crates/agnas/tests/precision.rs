//! Mixed precision (`--precision bf16`) against fp32 on the same weights and batch, for every space's supernet: the
//! logits, the attention's importances and every parameter's gradient agree within bf16's rounding, and what must
//! stay fp32 (logits for the loss, importances, the weights' gradients) does.
use agnas::config::Overrides;
use agnas::registry;
use agnas::space::SpaceName;
use agnas::train::MemoryFormat;
use std::sync::Mutex;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// The largest |a − b| relative to the largest |b|.
fn relative(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[]).max(f64::MIN_POSITIVE)
}

fn cosine(a: &Tensor, b: &Tensor) -> f64 {
    let dot = (a * b).sum(Kind::Double).double_value(&[]);
    dot / (a.norm().double_value(&[]) * b.norm().double_value(&[])).max(f64::MIN_POSITIVE)
}

/// (logits, importances, named gradients) of one training forward and backward in `kind`, of the fixed batch or
/// (`round`) of the batch rounded to bf16.
fn step(space: SpaceName, shape: &[&str], kind: Kind, round: bool) -> (Tensor, Tensor, Vec<(String, Tensor)>) {
    // libtorch's generator is one for the process, and the tests run side by side.
    static SEEDED: Mutex<()> = Mutex::new(());
    let _alone = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    let mut given = Overrides::default();
    for s in shape {
        given.set_text(s).unwrap();
    }
    let cfg = registry::space(space).supernet_bench(&given).unwrap();
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let net = (cfg.build)(&vs.root());
    MemoryFormat::ChannelsLast.apply(&vs);
    let x = Tensor::randn([32, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [32], (Kind::Int64, Device::Cpu));
    let x = if round { x.to_kind(Kind::BFloat16).to_kind(Kind::Float) } else { x };
    let out = net.forward_t(&x.to_kind(kind), true);
    out.logits.cross_entropy_for_logits(&y).backward();
    let mut grads: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, v)| v.requires_grad())
        .map(|(n, v)| {
            assert!(v.grad().defined(), "{space:?} {kind:?}: {n} got no gradient");
            (n, v.grad().copy())
        })
        .collect();
    grads.sort_by(|a, b| a.0.cmp(&b.0));
    (out.logits.detach(), out.importance.detach(), grads)
}

/// How far a run is from the fp32 one: (logits, importances) relative, and 1 − the cosine of all gradients and of
/// the attention's (small weights whose errors the whole would hide).
fn distance(
    (logits, importance, grads): &(Tensor, Tensor, Vec<(String, Tensor)>),
    (ref_logits, ref_importance, ref_grads): &(Tensor, Tensor, Vec<(String, Tensor)>),
) -> [f64; 4] {
    let flat = |g: &[(String, Tensor)], pick: &dyn Fn(&str) -> bool| {
        Tensor::cat(&g.iter().filter(|(n, _)| pick(n)).map(|(_, t)| t.flatten(0, -1)).collect::<Vec<_>>(), 0)
    };
    let gradients = |pick: &dyn Fn(&str) -> bool| 1.0 - cosine(&flat(grads, pick), &flat(ref_grads, pick));
    [
        relative(logits, ref_logits),
        relative(importance, ref_importance),
        gradients(&|_| true),
        gradients(&|n| n.contains("attention")),
    ]
}

/// bf16 against fp32, measured by what bf16 rounding does to the fp32 network on its own: the same run with only
/// its input rounded to bf16 (the supernets at test size, with small batch-norm batches, amplify it up to 3 %
/// in the logits). Every layer of a bf16 run rounds once more, so it may be a few times further; a wrong kernel or a
/// lost gradient is a hundred times.
fn check(space: SpaceName, shape: &[&str]) {
    let fp32 = step(space, shape, Kind::Float, false);
    let rounded_input = step(space, shape, Kind::Float, true);
    let bf16 = step(space, shape, Kind::BFloat16, false);
    assert_eq!((bf16.0.kind(), bf16.1.kind()), (Kind::Float, fp32.1.kind()), "{space:?}: fp32 logits and importances");
    let scale = distance(&rounded_input, &fp32);
    let far = distance(&bf16, &fp32);
    let what = ["logits", "importances", "gradients (1 - cosine)", "attention's gradients (1 - cosine)"];
    for ((what, far), scale) in what.iter().zip(far).zip(scale) {
        eprintln!("{space:?} {what}: bf16 {far:.2e}, fp32 with a bf16 input {scale:.2e}");
        assert!(far <= 10.0 * scale.max(1e-4), "{space:?} {what}: bf16 {far:.2e} from fp32, over 10x {scale:.2e}");
    }
}

#[test]
fn nb201_supernet_in_bf16_matches_fp32() {
    check(SpaceName::Nb201, &["supernet.cells_per_stage=1", "supernet.combine=\"mean\""]);
}

#[test]
fn darts_supernet_in_bf16_matches_fp32() {
    check(SpaceName::Darts, &["supernet.layers=5", "supernet.channels=8"]);
}

#[test]
fn proxyless_supernet_in_bf16_matches_fp32() {
    check(SpaceName::Proxyless, &["supernet.width_mult=0.35"]);
}
