//! The AGNAS gated sum of one decision point, the one place every space's candidates are squeezed, excited and
//! summed.
//!
//! The official code concatenates the candidates' outputs, runs the SE module on the concatenation and sums the
//! gated channel groups. This computes the same values without materialising the concatenation: the squeeze of a
//! concatenation is the concatenation of the squeezes, and the gated outputs go straight into the sum, so neither
//! the per-candidate products nor a per-decision sum exist as tensors.
//!
//! The sum itself is one fused libtorch autograd function (`csrc/gated_sum.cpp`) where its CPU kernels take the
//! operands (fp32 or fp64 throughout, or bf16 maps with fp32 gates; all NCHW or all channels-last): its forward and
//! backward each read every operand once, where the composed ops (`mul`, then `addcmul_` per term) make three
//! full-size passes per term in the backward. Elsewhere (CUDA, mixed layouts) the composed ops run, summing in the
//! gates' type as the kernels do. Both give the same forward values and the same gradients of the candidates' outputs,
//! bit for bit; the gates' gradients are sums over the pixels taken in another
//! order, so they differ in the last bits. `AGNAS_GATED_SUM=composed` runs the composed ops everywhere: the
//! reference path, and the exact numbers of runs made before the fused kernel.
use super::attention::SeAttention;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;
use tch::nn;
use tch::Tensor;

extern "C" {
    fn agnas_gated_sum(
        base: *const c_void,
        ys: *const *const c_void,
        gates: *const *const c_void,
        n: c_int,
        out: *mut *mut c_void,
        err: *mut *mut c_char,
    ) -> c_int;
    fn agnas_pixel_sum(x: *const c_void, out: *mut *mut c_void, err: *mut *mut c_char) -> c_int;
    fn agnas_gated_sum_free_message(message: *mut c_char);
}

/// Calls a function of the bridge that sets a new tensor and returns 0, or returns 2 where it does not take its
/// operands (`None`), or 1 with a message where libtorch threw (a panic, as tch's wrappers of libtorch ops do).
fn bridge(what: &str, call: impl FnOnce(*mut *mut c_void, *mut *mut c_char) -> c_int) -> Option<Tensor> {
    let (mut out, mut err) = (std::ptr::null_mut(), std::ptr::null_mut());
    match call(&mut out, &mut err) {
        0 => Some(unsafe { Tensor::from_ptr(out.cast()) }),
        2 => None,
        _ => {
            let message = if err.is_null() {
                "unknown error".to_string()
            } else {
                let text = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
                unsafe { agnas_gated_sum_free_message(err) };
                text
            };
            panic!("{what} failed: {message}")
        }
    }
}

/// tch's tensor handle is a `torch::Tensor*`, which the bridge takes as `at::Tensor*`.
fn raw(t: &Tensor) -> *const c_void {
    t.as_ptr() as *const c_void
}

/// How a gated sum is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// The fused autograd function where it takes the operands, else the composed ops.
    Fused,
    /// `mul` and `addcmul_`, as libtorch's autograd differentiates them.
    Composed,
}

impl Kernel {
    /// `AGNAS_GATED_SUM` (`fused`, the default, or `composed`), read once per process.
    fn from_env() -> Kernel {
        static CHOSEN: OnceLock<Kernel> = OnceLock::new();
        *CHOSEN.get_or_init(|| match std::env::var("AGNAS_GATED_SUM").as_deref() {
            Ok("composed") => Kernel::Composed,
            Ok("fused") | Err(_) => Kernel::Fused,
            Ok(other) => {
                tracing::warn!("AGNAS_GATED_SUM={other:?} is neither `fused` nor `composed`: using the fused kernel");
                Kernel::Fused
            }
        })
    }
}

/// `base + Σₖ gₖ ⊙ yₖ` for `terms` (yₖ of shape (B, C, H, W), gₖ of shape (B, C)) by the fused autograd function;
/// `None` where its kernels do not take the operands.
fn fused(base: Option<&Tensor>, terms: &[(&Tensor, Tensor)]) -> Option<Tensor> {
    let ys: Vec<*const c_void> = terms.iter().map(|(y, _)| raw(y)).collect();
    let gates: Vec<*const c_void> = terms.iter().map(|(_, g)| raw(g)).collect();
    let base = base.map_or(std::ptr::null(), raw);
    bridge("the fused gated sum", |out, err| unsafe {
        agnas_gated_sum(base, ys.as_ptr(), gates.as_ptr(), terms.len() as c_int, out, err)
    })
}

/// Adds `Σₖ gₖ ⊙ yₖ` for `terms` into `sum` (which it creates when `None`).
fn gated_sum(terms: &[(&Tensor, Tensor)], sum: &mut Option<Tensor>, kernel: Kernel) {
    if kernel == Kernel::Fused && !terms.is_empty() {
        if let Some(out) = fused(sum.as_ref(), terms) {
            *sum = Some(out);
            return;
        }
    }
    // The sum is taken in the gates' type and rounded once to the maps' (bf16 maps with fp32 gates in a mixed-precision
    // run, as the fused kernel does); where the types agree the casts are no-ops.
    let Some((first, first_gate)) = terms.first() else { return };
    let (map_kind, sum_kind) = (first.kind(), first_gate.kind());
    let mut acc = sum.take().map(|s| s.to_kind(sum_kind));
    for (out, gate) in terms {
        let (out, gate) = (out.to_kind(sum_kind), gate.unsqueeze(-1).unsqueeze(-1));
        match &mut acc {
            Some(s) => {
                let _ = s.addcmul_(&out, &gate);
            }
            None => acc = Some(out * gate),
        }
    }
    *sum = acc.map(|s| s.to_kind(map_kind));
}

/// Global average pooling (B, C, H, W) → (B, C), as a sum and a division of the small result: the backward then
/// broadcasts the gradient as a view instead of writing a full-size tensor (`mean`'s backward divides a full-size
/// expanded gradient). Reduced-precision maps are summed in their own type (ATen accumulates in fp32 and rounds the
/// sum once, as PyTorch's autocast runs an SE module's `adaptive_avg_pool2d`) and the small result goes to fp32 for
/// the attention: a sum that outputs fp32 would give its backward as a full-size cast in NCHW order. Their sum is
/// the bridge's, whose backward writes the broadcast gradient out densely (`PixelSum` in csrc/gated_sum.cpp).
pub fn squeeze(xs: &Tensor) -> Tensor {
    let size = xs.size();
    let compute = super::compute_kind(xs.kind());
    let sum = if compute == xs.kind() {
        xs.sum_dim_intlist([2i64, 3].as_slice(), false, xs.kind())
    } else {
        bridge("the pixel sum", |out, err| unsafe { agnas_pixel_sum(raw(xs), out, err) })
            .expect("the pixel sum takes every map")
    };
    sum.to_kind(compute) / (size[2] * size[3]) as f64
}

/// A candidate's branch output with its squeeze; `None` for a branch of zeros (`none`, or an identity whose output
/// is all [`Common`] term), which costs nothing.
pub type Branch = Option<(Tensor, Tensor)>;

/// A term that every candidate's output holds besides its branch (the input of a residual block, which is also
/// the whole output of its identity candidate), with its squeeze. Its gated copies fold into one product with the
/// sum of the gates.
pub struct Common<'a> {
    pub value: &'a Tensor,
    pub squeezed: &'a Tensor,
}

/// One SE module over `candidates` × `channels` channels, and the gated sum it weighs.
#[derive(Debug)]
pub struct GatedSum {
    attention: SeAttention,
    candidates: i64,
    channels: i64,
    /// Weight of every gated term: 1 (the official sum), or 1 / candidates for a mean.
    scale: f64,
}

impl GatedSum {
    /// The SE module's parameters are under `p` (`…/attention`, or the official macro space's `attention_layer`).
    pub fn new(p: nn::Path, candidates: i64, channels: i64, ratio: i64) -> Self {
        GatedSum { attention: SeAttention::new(p, candidates * channels, ratio), candidates, channels, scale: 1.0 }
    }

    /// The same module, adding the mean of the gated candidates, Σₖ gₖ ⊙ yₖ / K, instead of their sum. The gates,
    /// and so the importances, are the same; only the output's scale changes.
    pub fn averaged(self) -> Self {
        GatedSum { scale: 1.0 / self.candidates as f64, ..self }
    }

    pub fn attention(&self) -> &SeAttention {
        &self.attention
    }

    /// Adds Σₖ gateₖ ⊙ outputₖ into `sum` (which it creates when `None`) and returns the gates, shape (batch,
    /// candidates, channels). `branches` has one entry per candidate; at least one of them, or `common`, is not
    /// zero.
    pub fn accumulate(&self, branches: &[Branch], common: Option<Common>, sum: &mut Option<Tensor>) -> Tensor {
        self.accumulate_with(branches, common, sum, Kernel::from_env())
    }

    fn accumulate_with(
        &self,
        branches: &[Branch],
        common: Option<Common>,
        sum: &mut Option<Tensor>,
        kernel: Kernel,
    ) -> Tensor {
        let like = branches.iter().flatten().map(|(_, sq)| sq).next().or(common.as_ref().map(|s| s.squeezed));
        let like = like.expect("a decision point has a candidate that is not zero");
        let batch = like.size()[0];
        let squeezed: Vec<Tensor> = branches
            .iter()
            .map(|b| match (b, &common) {
                (Some((_, sq)), Some(s)) => sq + s.squeezed,
                (Some((_, sq)), None) => sq.shallow_clone(),
                (None, Some(s)) => s.squeezed.shallow_clone(),
                (None, None) => Tensor::zeros([batch, self.channels], (like.kind(), like.device())),
            })
            .collect();
        let gates = self.attention.excite(&Tensor::cat(&squeezed, 1));
        let per_candidate = gates.view([batch, self.candidates, self.channels]);
        let weights = if self.scale == 1.0 { per_candidate.shallow_clone() } else { &per_candidate * self.scale };
        let mut terms: Vec<(&Tensor, Tensor)> = branches
            .iter()
            .enumerate()
            .filter_map(|(k, b)| Some((&b.as_ref()?.0, weights.select(1, k as i64))))
            .collect();
        if let Some(s) = &common {
            terms.push((s.value, weights.sum_dim_intlist(1, false, gates.kind())));
        }
        gated_sum(&terms, sum, kernel);
        per_candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::settings::to_channels_last;
    use tch::{Device, Kind};

    fn leaf(t: Tensor) -> Tensor {
        t.set_requires_grad(true)
    }

    /// Gradients of Σ out ⊙ w (a weight that makes every gradient distinct) with respect to `inputs`.
    fn grads(out: &Tensor, w: &Tensor, inputs: &[&Tensor]) -> Vec<Tensor> {
        let loss = (out * w).sum(out.kind());
        let inputs: Vec<Tensor> = inputs.iter().map(|t| t.shallow_clone()).collect();
        Tensor::run_backward(&[loss], &inputs, false, false)
    }

    /// The largest |a − b| relative to the largest |b|.
    fn relative(a: &Tensor, b: &Tensor) -> f64 {
        let scale = b.abs().max().double_value(&[]).max(f64::MIN_POSITIVE);
        (a - b).abs().max().double_value(&[]) / scale
    }

    /// The fused sum against the composed ops on the same leaves: forward values and the gradients of the outputs
    /// and of the base bit for bit; the gates' gradients (other summation order) within `gate_tol` relative. Maps of
    /// `kind` take gates of its compute kind (fp32 for bf16).
    fn check(kind: Kind, channels_last: bool, size: [i64; 4], n: usize, with_base: bool, gate_tol: f64) {
        let [b, c, _, _] = size;
        let opts = (kind, Device::Cpu);
        let gate_opts = (crate::nn::compute_kind(kind), Device::Cpu);
        let layout = |t: Tensor| if channels_last { to_channels_last(&t) } else { t };
        let ys: Vec<Tensor> = (0..n).map(|_| leaf(layout(Tensor::randn(size, opts)))).collect();
        // The gates as the decision points make them: views of one (B, K, C) tensor.
        let all_gates = leaf(Tensor::rand([b, n as i64, c], gate_opts));
        let base = with_base.then(|| leaf(layout(Tensor::randn(size, opts))));
        let w = layout(Tensor::randn(size, opts));
        let run = |kernel: Kernel| {
            let terms: Vec<(&Tensor, Tensor)> =
                ys.iter().enumerate().map(|(k, y)| (y, all_gates.select(1, k as i64))).collect();
            // The composed ops add in place, so they get a copy of the base; its gradient is the base's.
            let mut sum = base.as_ref().map(|t| t * 1.0);
            if kernel == Kernel::Fused {
                assert!(fused(sum.as_ref(), &terms).is_some(), "the kernels take these operands");
            }
            gated_sum(&terms, &mut sum, kernel);
            let out = sum.unwrap();
            let mut inputs: Vec<&Tensor> = ys.iter().collect();
            inputs.push(&all_gates);
            inputs.extend(base.as_ref());
            let g = grads(&out, &w, &inputs);
            (out, g)
        };
        let (want, want_grads) = run(Kernel::Composed);
        let (got, got_grads) = run(Kernel::Fused);
        let what = format!("{kind:?} channels_last={channels_last} {size:?} n={n} base={with_base}");
        assert!(got.equal(&want), "forward, {what}: {}", relative(&got, &want));
        assert_eq!(got.is_contiguous(), want.is_contiguous(), "layout of the sum, {what}");
        for (k, (g, w)) in got_grads.iter().zip(&want_grads).enumerate() {
            if k == n {
                let far = relative(g, w);
                assert!(far <= gate_tol, "gates' gradient, {what}: {far:e} relative");
            } else {
                assert!(g.equal(w), "gradient of input {k}, {what}: {}", relative(g, w));
            }
        }
    }

    #[test]
    fn fused_sum_matches_the_composed_ops() {
        tch::manual_seed(0);
        for channels_last in [false, true] {
            for (size, n, with_base) in [
                ([4, 16, 8, 8], 3, false),
                ([4, 16, 8, 8], 1, true),
                // Channels and pixels that are not a multiple of any vector width.
                ([3, 5, 7, 7], 4, true),
                ([2, 20, 3, 5], 2, false),
            ] {
                check(Kind::Double, channels_last, size, n, with_base, 1e-15);
                check(Kind::Float, channels_last, size, n, with_base, 1e-6);
                check(Kind::BFloat16, channels_last, size, n, with_base, 1e-5);
            }
        }
    }

    /// A bf16 map's squeeze is ATen's bf16 sum over the pixels, in fp32, divided by their count; its gradient is the
    /// broadcast one, written out in the map's layout.
    #[test]
    fn reduced_precision_squeeze_is_the_sum_with_a_dense_gradient() {
        tch::manual_seed(3);
        for channels_last in [false, true] {
            let x = Tensor::randn([3, 5, 4, 6], (Kind::Float, Device::Cpu)).to_kind(Kind::BFloat16);
            let x = leaf(if channels_last { to_channels_last(&x) } else { x });
            let squeezed = squeeze(&x);
            let want =
                x.detach().sum_dim_intlist([2i64, 3].as_slice(), false, Kind::BFloat16).to_kind(Kind::Float) / 24.0;
            assert_eq!(squeezed.kind(), Kind::Float);
            assert!(squeezed.equal(&want), "channels_last={channels_last}");
            let w = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
            let grad = &grads(&squeezed, &w, &[&x])[0];
            let want = (&w / 24.0).to_kind(Kind::BFloat16).view([3, 5, 1, 1]).expand_as(&x);
            assert!(grad.equal(&want), "channels_last={channels_last}");
            assert_eq!(grad.is_contiguous(), !channels_last, "dense in the map's layout");
            assert_eq!(grad.stride(), x.stride());
        }
    }

    /// Whatever the kernels do not take (here: a mixed layout) runs the composed ops.
    #[test]
    fn operands_the_kernels_do_not_take_fall_back_to_the_composed_ops() {
        let opts = (Kind::Double, Device::Cpu);
        let (a, b) = (Tensor::randn([2, 3, 4, 4], opts), to_channels_last(&Tensor::randn([2, 3, 4, 4], opts)));
        let gates = Tensor::rand([2, 3], opts);
        assert!(fused(None, &[(&a, gates.shallow_clone()), (&b, gates.shallow_clone())]).is_none());
        let (mut fused_sum, mut composed_sum) = (None, None);
        let terms = [(&a, gates.shallow_clone()), (&b, gates.shallow_clone())];
        gated_sum(&terms, &mut fused_sum, Kernel::Fused);
        gated_sum(&terms, &mut composed_sum, Kernel::Composed);
        assert!(fused_sum.unwrap().equal(&composed_sum.unwrap()));
    }

    /// A whole decision point (SE module, a `none` candidate, the common term, a sum already holding another
    /// edge's output) on both paths: the same sum bit for bit, and every gradient (the SE parameters', the
    /// branches', the common term's and the squeezes') within the gates' rounding.
    #[test]
    fn decision_point_fused_matches_composed() {
        for channels_last in [false, true] {
            tch::manual_seed(1);
            let vs = nn::VarStore::new(Device::Cpu);
            let (candidates, c) = (4, 8);
            let gated = GatedSum::new(vs.root() / "attention", candidates, c, 2);
            let mut vs = vs;
            vs.double();
            let layout = |t: Tensor| if channels_last { to_channels_last(&t) } else { t };
            let opts = (Kind::Double, Device::Cpu);
            let outs: Vec<Tensor> = (0..3).map(|_| leaf(layout(Tensor::randn([5, c, 6, 6], opts)))).collect();
            let common = leaf(layout(Tensor::randn([5, c, 6, 6], opts)));
            let earlier = leaf(layout(Tensor::randn([5, c, 6, 6], opts)));
            let w = layout(Tensor::randn([5, c, 6, 6], opts));
            let run = |kernel: Kernel| {
                let branches: Vec<Branch> = vec![
                    Some((outs[0].shallow_clone(), squeeze(&outs[0]))),
                    None,
                    Some((outs[1].shallow_clone(), squeeze(&outs[1]))),
                    Some((outs[2].shallow_clone(), squeeze(&outs[2]))),
                ];
                let squeezed = squeeze(&common);
                let mut sum = Some(&earlier * 1.0);
                let per_candidate = gated.accumulate_with(
                    &branches,
                    Some(Common { value: &common, squeezed: &squeezed }),
                    &mut sum,
                    kernel,
                );
                let out = sum.unwrap();
                let vars = vs.trainable_variables();
                let mut inputs: Vec<&Tensor> = vars.iter().collect();
                inputs.extend(outs.iter());
                inputs.push(&common);
                inputs.push(&earlier);
                let g = grads(&out, &w, &inputs);
                (out, per_candidate.detach(), g)
            };
            let (want, want_gates, want_grads) = run(Kernel::Composed);
            let (got, got_gates, got_grads) = run(Kernel::Fused);
            assert!(got.equal(&want), "forward, channels_last={channels_last}");
            assert!(got_gates.equal(&want_gates), "gates, channels_last={channels_last}");
            for (g, w) in got_grads.iter().zip(&want_grads) {
                let far = relative(g, w);
                assert!(far <= 1e-15, "gradient, channels_last={channels_last}: {far:e} relative");
            }
        }
    }

    /// The averaged module weighs every term, the common one included, by 1 / candidates and gives the same gates.
    #[test]
    fn averaged_sum_is_the_sum_over_the_candidates() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let (candidates, c) = (3, 4);
        let sum_of = |gated: &GatedSum| {
            let opts = (Kind::Double, Device::Cpu);
            tch::manual_seed(5);
            let (y, common) = (Tensor::randn([2, c, 5, 5], opts), Tensor::randn([2, c, 5, 5], opts));
            let branches: Vec<Branch> = vec![None, Some((y.shallow_clone(), squeeze(&y))), None];
            let squeezed = squeeze(&common);
            let mut sum = None;
            let gates = gated.accumulate(&branches, Some(Common { value: &common, squeezed: &squeezed }), &mut sum);
            (sum.unwrap(), gates)
        };
        let mut vs = vs;
        let plain = GatedSum::new(vs.root() / "attention", candidates, c, 2);
        vs.double();
        let (summed, gates) = sum_of(&plain);
        let (averaged, same_gates) = sum_of(&plain.averaged());
        assert!(same_gates.equal(&gates));
        assert!(averaged.allclose(&(summed / candidates as f64), 1e-14, 1e-14, false));
    }
}
