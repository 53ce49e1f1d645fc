//! SGD with momentum and weight decay, the cosine schedule and gradient clipping.
//!
//! Written on tensors rather than through tch's `COptimizer` because resuming bit-identically needs the momentum
//! buffers, which libtorch's optimizer does not expose.
use super::settings::{ClipBy, ScheduleKind, TrainConfig};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn::VarStore, Tensor};

/// `torch.optim.SGD(params, lr, momentum, weight_decay, nesterov)` with dampening 0.
pub struct Sgd {
    params: Vec<(String, Tensor)>,
    buffers: Vec<Option<Tensor>>,
    momentum: f64,
    /// Per parameter: a space's rule may exempt some (the macro search decays only conv weights and the classifier).
    weight_decay: Vec<f64>,
    nesterov: bool,
}

impl Sgd {
    /// Over every trainable variable of `vs`, in name order (so that checkpoints are stable).
    pub fn new(vs: &VarStore, momentum: f64, weight_decay: f64, nesterov: bool) -> Self {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers = params.iter().map(|_| None).collect();
        let weight_decay = vec![weight_decay; params.len()];
        Sgd { params, buffers, momentum, weight_decay, nesterov }
    }

    /// Decays only the parameters for which `decays(name, parameter)` holds.
    pub fn decay_only(mut self, decays: impl Fn(&str, &Tensor) -> bool) -> Self {
        for ((name, p), wd) in self.params.iter().zip(self.weight_decay.iter_mut()) {
            if !decays(name, p) {
                *wd = 0.0;
            }
        }
        self
    }

    /// Clamps every gradient element to [-`clip`, `clip`] (`clip_grad_value_`).
    pub fn clip_grad_value(&self, clip: f64) {
        tch::no_grad(|| {
            for (_, p) in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.clamp_(-clip, clip);
                }
            }
        });
    }

    /// The optimiser `train` asks for, over every trainable variable of `vs`.
    pub fn from_config(vs: &VarStore, train: &TrainConfig) -> Self {
        let rule = train.weight_decay_on;
        Sgd::new(vs, train.momentum, train.weight_decay, train.nesterov).decay_only(|name, p| rule.decays(name, p))
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Scales all gradients so that their global L2 norm is at most `max_norm` (`clip_grad_norm_`), on the device.
    pub fn clip_grad_norm(&self, max_norm: f64) {
        let norms: Vec<Tensor> =
            self.params.iter().map(|(_, p)| p.grad()).filter(|g| g.defined()).map(|g| g.norm()).collect();
        if norms.is_empty() {
            return;
        }
        let total = Tensor::stack(&norms, 0).norm();
        let coef = (total + 1e-6).reciprocal() * max_norm;
        let coef = coef.clamp_max(1.0);
        tch::no_grad(|| {
            for (_, p) in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.g_mul_(&coef);
                }
            }
        });
    }

    /// Clips the gradients to `bound` (when positive) by global norm or by value, then steps.
    pub fn clip_and_step(&mut self, lr: f64, bound: f64, by: ClipBy) {
        match by {
            _ if bound <= 0.0 => {}
            ClipBy::Norm => self.clip_grad_norm(bound),
            ClipBy::Value => self.clip_grad_value(bound),
        }
        self.step(lr);
    }

    pub fn step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for (((_, p), buf), &wd) in self.params.iter_mut().zip(self.buffers.iter_mut()).zip(&self.weight_decay) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let mut d = if wd != 0.0 { g + &*p * wd } else { g.copy() };
                if self.momentum != 0.0 {
                    let b = match buf {
                        Some(b) => {
                            let _ = b.g_mul_scalar_(self.momentum).g_add_(&d);
                            b
                        }
                        None => buf.insert(d.copy()),
                    };
                    d = if self.nesterov { d + &*b * self.momentum } else { b.shallow_clone() };
                }
                let _ = p.g_add_(&(d * -lr));
            }
        });
    }

    /// Writes the momentum buffers, keyed by parameter name.
    pub fn save(&self, path: &Path) -> Result<()> {
        let named = self.params.iter().zip(&self.buffers).filter_map(|((n, _), b)| b.as_ref().map(|b| (n.as_str(), b)));
        crate::report::write_tensors(named, path)
    }

    pub fn load(&mut self, path: &Path) -> Result<()> {
        let saved = Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?;
        let mut saved: std::collections::HashMap<String, Tensor> = saved.into_iter().collect();
        for ((name, p), buf) in self.params.iter().zip(self.buffers.iter_mut()) {
            *buf = match saved.remove(name) {
                Some(t) => {
                    anyhow::ensure!(
                        t.size() == p.size(),
                        "{}: momentum buffer of {name} has shape {:?}, the parameter {:?}",
                        path.display(),
                        t.size(),
                        p.size()
                    );
                    // In the parameter's memory layout, as a buffer made by `step` would be.
                    let mut buffer = p.zeros_like();
                    tch::no_grad(|| buffer.copy_(&t));
                    Some(buffer)
                }
                None => None,
            };
        }
        anyhow::ensure!(saved.is_empty(), "{}: buffers for unknown parameters {:?}", path.display(), saved.keys());
        Ok(())
    }
}

/// Cosine annealing from `lr` to `lr_min` over `epochs`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineSchedule {
    pub lr: f64,
    pub lr_min: f64,
    pub epochs: usize,
    /// The official code calls `scheduler.step()` before each epoch, so epoch e runs at the value for e+1.
    pub step_at_epoch_start: bool,
}

/// The learning rate of each step.
pub trait LrSchedule {
    /// The rate for step `step` (0-based) of epoch `epoch`, of `steps_per_epoch`.
    fn lr(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64;
}

/// The schedule `train` asks for.
pub fn schedule(train: &TrainConfig) -> Box<dyn LrSchedule> {
    match train.schedule {
        ScheduleKind::Cosine => Box::new(CosineSchedule::from_config(train)),
        ScheduleKind::Linear => Box::new(LinearSchedule {
            lr: train.lr,
            lr_min: train.lr_min,
            epochs: train.epochs,
            step_first: train.lr_step_at_epoch_start,
        }),
    }
}

/// Linear decay per iteration from `lr` to `lr_min` over all the steps of `epochs`, then held at `lr_min`.
///
/// The macro search's official `LambdaLR(1 − it/δ)` with δ = T/(1 − lr_min/lr), stepped before each update and no
/// more once the rate is at most `lr_min`, is this schedule with `step_first` (step t runs at the value for t+1, the
/// last one at `lr_min`). The macro retrain's `1 − it/T`, stepped after each update, is this with `lr_min` = 0 and
/// without `step_first`; its official rate turns negative past T (the loader is longer than its T): clamped here.
/// T comes from the real loader length, not from a hard-coded data set size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSchedule {
    pub lr: f64,
    pub lr_min: f64,
    pub epochs: usize,
    pub step_first: bool,
}

impl LrSchedule for LinearSchedule {
    fn lr(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
        let total = (self.epochs * steps_per_epoch).max(1) as f64;
        let t = (epoch * steps_per_epoch + step + usize::from(self.step_first)) as f64;
        (self.lr - (self.lr - self.lr_min) * t / total).max(self.lr_min)
    }
}

impl CosineSchedule {
    /// The schedule `train` asks for.
    pub fn from_config(train: &TrainConfig) -> Self {
        CosineSchedule {
            lr: train.lr,
            lr_min: train.lr_min,
            epochs: train.epochs,
            step_at_epoch_start: train.lr_step_at_epoch_start,
        }
    }

    pub fn lr_at(&self, epoch: usize) -> f64 {
        let e = epoch + usize::from(self.step_at_epoch_start);
        let t = e as f64 / self.epochs.max(1) as f64;
        self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Stepped per epoch: every step of an epoch runs at the same rate.
impl LrSchedule for CosineSchedule {
    fn lr(&self, epoch: usize, _step: usize, _steps_per_epoch: usize) -> f64 {
        self.lr_at(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    #[test]
    fn cosine_matches_the_official_offset() {
        let s = CosineSchedule { lr: 0.025, lr_min: 0.001, epochs: 50, step_at_epoch_start: false };
        assert!((s.lr_at(0) - 0.025).abs() < 1e-12);
        assert!((s.lr_at(50) - 0.001).abs() < 1e-12);
        let official = CosineSchedule { step_at_epoch_start: true, ..s };
        // spec §3.1: epoch e uses 0.001 + 0.012·(1 + cos(π(e+1)/50)).
        let e = 7;
        let want = 0.001 + 0.012 * (1.0 + (std::f64::consts::PI * (e as f64 + 1.0) / 50.0).cos());
        assert!((official.lr_at(e) - want).abs() < 1e-12);
    }

    /// The official macro-search rule, iterated as the official loop does it, against the closed form.
    #[test]
    fn linear_schedule_matches_the_official_lambda_rules() {
        let (lr, min, epochs, spe) = (0.25, 5e-4, 3, 7);
        let total = (epochs * spe) as f64;
        let delta = total / (1.0 - min / lr);
        let search = LinearSchedule { lr, lr_min: min, epochs, step_first: true };
        // LambdaLR's counter: `scheduler.step()` before each step while the current rate is above the minimum.
        let (mut it, mut current) = (0.0, lr);
        for k in 0..epochs * spe + 5 {
            if current > min {
                it += 1.0;
                current = lr * (1.0 - it / delta);
            }
            let ours = search.lr(k / spe, k % spe, spe);
            assert!((ours - current.max(min)).abs() < 1e-12, "step {k}: {ours} vs {current}");
        }
        let retrain = LinearSchedule { lr: 0.5, lr_min: 0.0, epochs, step_first: false };
        for k in 0..epochs * spe + 5 {
            let official = 0.5 * (1.0 - k as f64 / total);
            assert!((retrain.lr(k / spe, k % spe, spe) - official.max(0.0)).abs() < 1e-12, "step {k}");
        }
    }

    /// Two steps of momentum SGD with weight decay and Nesterov, against the closed form of torch.optim.SGD.
    #[test]
    fn sgd_follows_torch_update_rule() {
        for nesterov in [false, true] {
            let vs = nn::VarStore::new(Device::Cpu);
            let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
            let mut opt = Sgd::new(&vs, 0.9, 0.1, nesterov);
            let grads = [[1.0, -2.0, 0.5], [0.5, 0.5, -1.0]];
            let (mut p, mut buf) = ([1.0f64; 3], [0.0f64; 3]);
            for (step, g) in grads.iter().enumerate() {
                opt.zero_grad();
                let target = Tensor::from_slice(g).to_kind(Kind::Float);
                (&w * &target).sum(Kind::Float).backward();
                opt.step(0.5);
                for i in 0..3 {
                    let d = g[i] + 0.1 * p[i];
                    buf[i] = if step == 0 { d } else { 0.9 * buf[i] + d };
                    p[i] -= 0.5 * if nesterov { d + 0.9 * buf[i] } else { buf[i] };
                }
            }
            let got: Vec<f64> = Vec::try_from(w.to_kind(Kind::Double)).unwrap();
            for i in 0..3 {
                assert!((got[i] - p[i]).abs() < 1e-6, "nesterov={nesterov} {got:?} vs {p:?}");
            }
        }
    }

    /// Exempted parameters get no weight decay; gradients are clamped element by element.
    #[test]
    fn decay_rule_and_clip_by_value() {
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = (vs.root() / "conv").var("weight", &[1, 1, 1, 2], nn::Init::Const(1.0));
        let bn = (vs.root() / "bn").var("weight", &[2], nn::Init::Const(1.0));
        let mut opt = Sgd::new(&vs, 0.0, 0.5, false).decay_only(|_, p| p.dim() == 4);
        ((&conv * 3.0).sum(Kind::Float) + (&bn * -0.25).sum(Kind::Float)).backward();
        opt.clip_grad_value(1.0);
        opt.step(0.1);
        // conv: 1 - 0.1·(clamp(3) + 0.5·1) = 0.85; bn: 1 - 0.1·(-0.25) = 1.025, no decay.
        let got = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        assert!(got(&conv).iter().all(|v| (v - 0.85).abs() < 1e-6), "{:?}", got(&conv));
        assert!(got(&bn).iter().all(|v| (v - 1.025).abs() < 1e-6), "{:?}", got(&bn));
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().var("a", &[2], nn::Init::Const(0.0));
        let b = vs.root().var("b", &[1], nn::Init::Const(0.0));
        let opt = Sgd::new(&vs, 0.0, 0.0, false);
        // Gradients (3, 4) and (12): global norm 13.
        ((&a * Tensor::from_slice(&[3.0f32, 4.0])).sum(Kind::Float) + (&b * 12.0).sum(Kind::Float)).backward();
        opt.clip_grad_norm(6.5);
        let ga: Vec<f32> = Vec::try_from(a.grad()).unwrap();
        let gb: Vec<f32> = Vec::try_from(b.grad()).unwrap();
        assert!((ga[0] - 1.5).abs() < 1e-5 && (ga[1] - 2.0).abs() < 1e-5 && (gb[0] - 6.0).abs() < 1e-5);
        opt.clip_grad_norm(100.0);
        let ga2: Vec<f32> = Vec::try_from(a.grad()).unwrap();
        assert!((ga2[0] - 1.5).abs() < 1e-5, "no scaling below the threshold");
    }
}
