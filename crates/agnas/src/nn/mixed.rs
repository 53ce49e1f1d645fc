//! The AGNAS decision point of a cell edge: every candidate runs and one [`GatedSum`] weighs them, accumulated in
//! place into the sum of the node the edge leads to. Work that depends only on the node an edge reads is done once
//! per node for all its outgoing edges ([`Node`]): the ReLU in front of every convolution, the parameter-free
//! candidates (identity, pooling) and their squeezes; `none` costs nothing.
use super::gated::{squeeze, Branch, GatedSum};
use super::ops::{AfterRelu, Pool};
use std::cell::{OnceCell, RefCell};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// A parameter-free function of a node, computed once per node however many edges read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shared {
    Identity,
    Pool(Pool),
}

/// One candidate of a [`MixedOp`].
#[derive(Debug)]
pub enum Candidate {
    /// `none`: all zeros, so no work.
    Zero,
    /// A parameter-free op (identity, pooling).
    Shared(Shared),
    /// A module applied to a parameter-free op's output (DARTS's pool followed by a BN of its own).
    OnShared(Shared, Box<dyn ModuleT>),
    /// A module that starts with a ReLU (the convolutions, `FactorizedReduce`).
    OnRelu(Box<dyn AfterRelu>),
}

/// A cell node as its outgoing edges read it: the value plus what the edges would otherwise each recompute.
pub struct Node {
    value: Tensor,
    relu: OnceCell<Tensor>,
    /// (op, output, squeeze) of the shared ops evaluated so far; a handful per node, so a list.
    shared: RefCell<Vec<(Shared, Tensor, Tensor)>>,
}

impl Node {
    pub fn new(value: Tensor) -> Self {
        Node { value, relu: OnceCell::new(), shared: RefCell::new(Vec::new()) }
    }

    pub fn value(&self) -> &Tensor {
        &self.value
    }

    pub fn into_value(self) -> Tensor {
        self.value
    }

    fn relu(&self) -> &Tensor {
        self.relu.get_or_init(|| self.value.relu())
    }

    /// Output and squeeze of a shared op on this node.
    fn shared(&self, op: Shared, train: bool) -> (Tensor, Tensor) {
        if let Some((_, out, sq)) = self.shared.borrow().iter().find(|(o, _, _)| *o == op) {
            return (out.shallow_clone(), sq.shallow_clone());
        }
        let out = match op {
            Shared::Identity => self.value.shallow_clone(),
            Shared::Pool(pool) => pool.forward_t(&self.value, train),
        };
        let sq = squeeze(&out);
        self.shared.borrow_mut().push((op, out.shallow_clone(), sq.shallow_clone()));
        (out, sq)
    }
}

/// The output of a [`MixedOp`] on its own: the gated sum and the per-candidate importance of this forward.
pub struct MixedOutput {
    pub out: Tensor,
    /// Σ over batch and the candidate's channels of its gates, shape (n_candidates,); detached, on the device.
    pub importance: Tensor,
}

/// A decision point (an edge of a cell): candidates under `p/_ops/<k>`, one SE module at `p/attention`.
#[derive(Debug)]
pub struct MixedOp {
    candidates: Vec<Candidate>,
    gated: GatedSum,
}

impl MixedOp {
    pub fn new(p: nn::Path, candidates: Vec<Candidate>, channels: i64, ratio: i64) -> Self {
        let gated = GatedSum::new(p / "attention", candidates.len() as i64, channels, ratio);
        MixedOp { candidates, gated }
    }

    /// The same decision point, adding the mean of its gated candidates instead of their sum
    /// ([`GatedSum::averaged`]).
    pub fn averaged(self) -> Self {
        MixedOp { gated: self.gated.averaged(), ..self }
    }

    /// The gated sum of the candidates on `node`.
    pub fn forward_t(&self, node: &Node, train: bool) -> MixedOutput {
        let mut out = None;
        let importance = self.accumulate(node, &mut out, train);
        MixedOutput { out: out.expect("a mixed op has a candidate other than none"), importance }
    }

    /// Adds the gated sum of the candidates on `node` into `sum` (which it creates when `None`) and returns this
    /// forward's importances, shape (n_candidates,).
    pub fn accumulate(&self, node: &Node, sum: &mut Option<Tensor>, train: bool) -> Tensor {
        let branches: Vec<Branch> = self
            .candidates
            .iter()
            .map(|c| match c {
                Candidate::Zero => None,
                Candidate::Shared(op) => Some(node.shared(*op, train)),
                Candidate::OnShared(op, module) => {
                    let out = module.forward_t(&node.shared(*op, train).0, train);
                    let sq = squeeze(&out);
                    Some((out, sq))
                }
                Candidate::OnRelu(module) => {
                    let out = module.forward_relu(node.relu(), train);
                    let sq = squeeze(&out);
                    Some((out, sq))
                }
            })
            .collect();
        let per_candidate = self.gated.accumulate(&branches, None, sum);
        per_candidate.detach().sum_dim_intlist([0i64, 2].as_slice(), false, per_candidate.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::ConvSpec;
    use crate::nn::ops::{PoolKind, ReLUConvBN};
    use tch::{Device, Kind};

    /// The straightforward path of the official code: every candidate on the raw input, the concatenation
    /// materialised, SE on it, gated channel groups summed.
    fn concat_path(op: &MixedOp, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let outs: Vec<Tensor> = op
            .candidates
            .iter()
            .map(|c| match c {
                Candidate::Zero => xs * 0.0,
                Candidate::Shared(Shared::Identity) => xs.shallow_clone(),
                Candidate::Shared(Shared::Pool(p)) => p.forward_t(xs, train),
                Candidate::OnShared(Shared::Identity, m) => m.forward_t(xs, train),
                Candidate::OnShared(Shared::Pool(p), m) => m.forward_t(&p.forward_t(xs, train), train),
                Candidate::OnRelu(m) => m.forward_relu(&xs.relu(), train),
            })
            .collect();
        let cat = Tensor::cat(&outs, 1);
        let gates = op.gated.attention().gates(&cat);
        let gated = &cat * gates.unsqueeze(-1).unsqueeze(-1);
        (gated.split(xs.size()[1], 1).into_iter().reduce(|a, b| a + b).unwrap(), gates)
    }

    /// Two edges reading the same node into one sum (shared ReLU, pool and squeezes; in-place accumulation) give
    /// the values and gradients of two independent concatenation paths, in NCHW and channels-last.
    #[test]
    fn fast_path_matches_the_concatenation() {
        for channels_last in [false, true] {
            tch::manual_seed(3);
            let mut vs = nn::VarStore::new(Device::Cpu);
            let c = 4;
            let edge = |i: usize| {
                let p = vs.root() / i;
                let ops = &p / "_ops";
                let conv = ReLUConvBN::new(&ops / 2, c, c, 3, ConvSpec::default().padding(1), false);
                let pool = Pool { kind: PoolKind::Avg, stride: 1 };
                let candidates = vec![
                    Candidate::Zero,
                    Candidate::Shared(Shared::Identity),
                    Candidate::OnRelu(Box::new(conv)),
                    Candidate::Shared(Shared::Pool(pool)),
                ];
                MixedOp::new(p, candidates, c, 2)
            };
            let (a, b) = (edge(0), edge(1));
            vs.double();
            if channels_last {
                crate::train::settings::vars_to_channels_last(&vs);
            }
            let mut x = Tensor::randn([3, c, 6, 6], (Kind::Double, Device::Cpu));
            if channels_last {
                x = crate::train::settings::to_channels_last(&x);
            }
            let x = x.set_requires_grad(true);
            let w = Tensor::randn([3, c, 6, 6], (Kind::Double, Device::Cpu));
            let grads = |loss: Tensor| {
                let mut inputs: Vec<Tensor> = vs.trainable_variables();
                inputs.push(x.shallow_clone());
                Tensor::run_backward(&[loss], &inputs, false, false)
            };

            let ((out_a, gates_a), (out_b, _)) = (concat_path(&a, &x, true), concat_path(&b, &x, true));
            let want = out_a + out_b;
            let want_grads = grads((&want * &w).sum(Kind::Double));
            let node = Node::new(x.shallow_clone());
            let mut sum = None;
            let imp_a = a.accumulate(&node, &mut sum, true);
            let _ = b.accumulate(&node, &mut sum, true);
            let got = sum.unwrap();
            let got_grads = grads((&got * &w).sum(Kind::Double));

            assert!(got.allclose(&want, 1e-12, 1e-12, false), "forward, channels_last={channels_last}");
            for (g, w) in got_grads.iter().zip(&want_grads) {
                assert!(g.allclose(w, 1e-10, 1e-12, false), "gradient, channels_last={channels_last}");
            }
            let want_imp = gates_a.view([3, 4, c]).sum_dim_intlist([0i64, 2].as_slice(), false, Kind::Double);
            assert!(imp_a.allclose(&want_imp, 1e-12, 1e-12, false), "importances, channels_last={channels_last}");
        }
    }
}
