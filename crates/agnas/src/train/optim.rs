//! SGD with momentum and weight decay, the cosine schedule and gradient clipping.
//!
//! Written on tensors rather than through tch's `COptimizer` because resuming bit-identically needs the momentum
//! buffers, which libtorch's optimizer does not expose.
use super::settings::{ClipBy, ScheduleKind, TrainConfig};
use crate::dist::Dist;
use crate::error::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn::VarStore, Tensor};

/// `torch.optim.SGD(params, lr, momentum, weight_decay, nesterov)` with dampening 0.
///
/// At the first step the parameters, their gradients and the momentum move into one flat buffer per weight-decay
/// value, each tensor becoming a view of it with its own strides, so that clipping, the update and `zero_grad` are a
/// few kernels per buffer instead of a few per tensor. On a GPU the per-tensor loop is what bounds the step (about
/// six launches for each of the macro supernet's 1,200 tensors: BENCHMARKS.md, "On an NVIDIA H200"), and tch binds
/// no `_foreach_*` operators. Every element goes through the same operations in the same order, so the numbers are
/// those of the per-tensor loop, which remains for parameters that cannot be flattened.
pub struct Sgd {
    params: Vec<(String, Tensor)>,
    buffers: Vec<Option<Tensor>>,
    momentum: f64,
    /// Per parameter: a space's rule may exempt some (the macro search decays only conv weights and the classifier).
    weight_decay: Vec<f64>,
    nesterov: bool,
    flat: Flat,
    /// The ranks whose gradients are averaged before each step (one process: none).
    dist: Dist,
    /// (index, count) of the current micro-batch of a step: gradients accumulate until the last.
    micro: (usize, usize),
    /// Whether this step's gradients are already averaged over the ranks and micro-batches.
    averaged: bool,
}

enum Flat {
    /// Not tried yet: gradients exist only after the first backward.
    Pending,
    /// Some parameter had no gradient, or a layout or type a flat buffer cannot hold.
    Off,
    On(Vec<FlatGroup>),
}

/// The parameters sharing one weight decay: their values, gradients and momentum, each in one flat buffer.
struct FlatGroup {
    weight_decay: f64,
    params: Tensor,
    grads: Tensor,
    momentum: Option<Tensor>,
    /// Room for the step's intermediate values.
    scratch: Tensor,
    /// (index into `Sgd::params`, size, strides, offset) of each member's view.
    members: Vec<(usize, Vec<i64>, Vec<i64>, i64)>,
}

impl FlatGroup {
    fn view(flat: &Tensor, (_, size, stride, offset): &(usize, Vec<i64>, Vec<i64>, i64)) -> Tensor {
        flat.as_strided(size.as_slice(), stride.as_slice(), Some(*offset))
    }

    /// The update, chunk by chunk: on the CPU each chunk goes through all the operations while it is in cache (one
    /// pass of each over the whole buffer would stream it from memory eight times); on a GPU in one piece.
    fn step(&mut self, lr: f64, momentum: f64, nesterov: bool, fresh: bool) {
        let total = self.params.numel() as i64;
        let chunk = if self.params.device().is_cuda() { total } else { CPU_CHUNK };
        for start in (0..total).step_by(chunk.max(1) as usize) {
            let len = chunk.min(total - start);
            let mut buf = self.momentum.as_ref().map(|b| b.narrow(0, start, len));
            update(
                &mut self.params.narrow(0, start, len),
                &self.grads.narrow(0, start, len),
                buf.as_mut().map(|b| (b, fresh)),
                &mut self.scratch.narrow(0, start, len),
                self.weight_decay,
                lr,
                momentum,
                nesterov,
            );
        }
    }

    /// Whether every member's value and gradient still are the views of this group's buffers.
    fn holds(&self, params: &[(String, Tensor)]) -> bool {
        let bytes = self.params.kind().elt_size_in_bytes();
        let at = |flat: &Tensor, offset: i64| flat.data_ptr() as usize + offset as usize * bytes;
        self.members.iter().all(|&(i, _, _, offset)| {
            let p = &params[i].1;
            let g = p.grad();
            p.data_ptr() as usize == at(&self.params, offset)
                && g.defined()
                && g.data_ptr() as usize == at(&self.grads, offset)
        })
    }

    /// (index into `Sgd::params`, gradient) of each member.
    fn grad_views(&self) -> impl Iterator<Item = (usize, Tensor)> + '_ {
        self.members.iter().map(|m| (m.0, Self::view(&self.grads, m)))
    }
}

/// Elements of a flat buffer updated at a time on the CPU: its four streams (values, gradients, momentum, scratch) stay
/// within a core's L2 cache.
const CPU_CHUNK: i64 = 1 << 16;

/// Whether `stride` lays a tensor of `size` out densely (some permutation of a contiguous layout, channels-last
/// included), so that it fits in `numel` consecutive elements of a flat buffer.
fn dense(size: &[i64], stride: &[i64]) -> bool {
    let mut dims: Vec<(i64, i64)> = size.iter().zip(stride).filter(|(&n, _)| n != 1).map(|(&n, &s)| (s, n)).collect();
    dims.sort_unstable();
    let mut expected = 1;
    for (s, n) in dims {
        if s != expected {
            return false;
        }
        expected *= n;
    }
    true
}

impl Sgd {
    /// Over every trainable variable of `vs`, in name order (so that checkpoints are stable).
    pub fn new(vs: &VarStore, momentum: f64, weight_decay: f64, nesterov: bool) -> Self {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers = params.iter().map(|_| None).collect();
        let weight_decay = vec![weight_decay; params.len()];
        Sgd {
            params,
            buffers,
            momentum,
            weight_decay,
            nesterov,
            flat: Flat::Pending,
            dist: Dist::single(),
            micro: (0, 1),
            averaged: false,
        }
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

    /// Keeps the per-tensor loop: the reference the flat buffers are tested against.
    #[cfg(test)]
    fn per_tensor(mut self) -> Self {
        self.flat = Flat::Off;
        self
    }

    /// The optimiser `train` asks for, over every trainable variable of `vs`.
    pub fn from_config(vs: &VarStore, train: &TrainConfig) -> Self {
        let rule = train.weight_decay_on;
        Sgd::new(vs, train.momentum, train.weight_decay, train.nesterov).decay_only(|name, p| rule.decays(name, p))
    }

    /// Moves parameters, gradients and momentum into flat buffers, once every parameter has a gradient; again when a
    /// tensor no longer lives there (its data replaced, or its gradient reassigned), so that no update goes astray.
    fn flatten(&mut self) {
        if let Flat::On(groups) = &self.flat {
            if groups.iter().all(|g| g.holds(&self.params)) {
                return;
            }
            tracing::debug!("a parameter or gradient left the optimizer's flat buffers: rebuilding them");
            self.flat = Flat::Pending;
        }
        if !matches!(self.flat, Flat::Pending) {
            return;
        }
        self.flat = match self.flat_groups() {
            Some(groups) => Flat::On(groups),
            None => Flat::Off,
        };
        tracing::debug!(flat = matches!(self.flat, Flat::On(_)), tensors = self.params.len(), "optimizer buffers");
    }

    fn flat_groups(&mut self) -> Option<Vec<FlatGroup>> {
        let first = &self.params.first()?.1;
        let (kind, device) = (first.kind(), first.device());
        let fits = |p: &Tensor| {
            p.grad().defined() && p.kind() == kind && p.device() == device && dense(&p.size(), &p.stride())
        };
        let with_momentum = self.buffers.iter().filter(|b| b.is_some()).count();
        if !self.params.iter().all(|(_, p)| fits(p)) || (with_momentum != 0 && with_momentum != self.params.len()) {
            return None;
        }
        let mut decays: Vec<f64> = Vec::new();
        for &wd in &self.weight_decay {
            if !decays.contains(&wd) {
                decays.push(wd);
            }
        }
        let groups = decays.into_iter().map(|wd| {
            let members: Vec<usize> = (0..self.params.len()).filter(|&i| self.weight_decay[i] == wd).collect();
            self.flat_group(wd, &members, kind, device)
        });
        tch::no_grad(|| Some(groups.collect()))
    }

    fn flat_group(&mut self, weight_decay: f64, indices: &[usize], kind: tch::Kind, device: tch::Device) -> FlatGroup {
        let total: i64 = indices.iter().map(|&i| self.params[i].1.numel() as i64).sum();
        let empty = || Tensor::empty([total], (kind, device));
        let mut group = FlatGroup {
            weight_decay,
            params: empty(),
            grads: empty(),
            momentum: self.buffers[indices[0]].is_some().then(empty),
            scratch: empty(),
            members: Vec::with_capacity(indices.len()),
        };
        let mut offset = 0;
        for &i in indices {
            let p = &mut self.params[i].1;
            let member = (i, p.size(), p.stride(), offset);
            offset += p.numel() as i64;
            let mut value = FlatGroup::view(&group.params, &member);
            value.copy_(p);
            let mut grad = FlatGroup::view(&group.grads, &member);
            grad.copy_(&p.grad());
            p.grad().set_data(&grad);
            p.set_data(&value);
            if let (Some(flat), Some(buffer)) = (&group.momentum, &mut self.buffers[i]) {
                let mut view = FlatGroup::view(flat, &member);
                view.copy_(buffer);
                *buffer = view;
            }
            group.members.push(member);
        }
        group
    }

    /// Clamps every gradient element to [-`clip`, `clip`] (`clip_grad_value_`).
    pub fn clip_grad_value(&mut self, clip: f64) {
        self.flatten();
        tch::no_grad(|| {
            if let Flat::On(groups) = &mut self.flat {
                for group in groups {
                    let _ = group.grads.clamp_(-clip, clip);
                }
                return;
            }
            for (_, p) in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.clamp_(-clip, clip);
                }
            }
        });
    }

    pub fn zero_grad(&mut self) {
        if self.micro.0 > 0 {
            return;
        }
        if let Flat::On(groups) = &mut self.flat {
            for group in groups {
                let _ = group.grads.zero_();
            }
            return;
        }
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Scales all gradients so that their global L2 norm is at most `max_norm` (`clip_grad_norm_`), on the device.
    ///
    /// The norm is taken per tensor, then over those norms, as PyTorch does: a norm of the flat buffer would sum in
    /// another order and change the last bits.
    pub fn clip_grad_norm(&mut self, max_norm: f64) {
        self.flatten();
        let grads: Vec<Tensor> = match &self.flat {
            Flat::On(groups) => {
                // In parameter order, as the per-tensor loop sums them: the groups are ordered by weight decay.
                let mut views: Vec<(usize, Tensor)> = groups.iter().flat_map(FlatGroup::grad_views).collect();
                views.sort_unstable_by_key(|(i, _)| *i);
                views.into_iter().map(|(_, g)| g).collect()
            }
            _ => self.params.iter().map(|(_, p)| p.grad()).filter(|g| g.defined()).collect(),
        };
        if grads.is_empty() {
            return;
        }
        let norms: Vec<Tensor> = grads.iter().map(Tensor::norm).collect();
        let total = Tensor::stack(&norms, 0).norm();
        let coef = (total + 1e-6).reciprocal() * max_norm;
        let coef = coef.clamp_max(1.0);
        tch::no_grad(|| match &mut self.flat {
            Flat::On(groups) => groups.iter_mut().for_each(|group| {
                let _ = group.grads.g_mul_(&coef);
            }),
            _ => grads.into_iter().for_each(|mut g| {
                let _ = g.g_mul_(&coef);
            }),
        });
    }

    /// The next forward-backward pass is micro-batch `index` of `count` of one step: `zero_grad` acts only before the
    /// first, and `clip_and_step` only after the last, on the gradients' mean over the micro-batches.
    pub fn micro_batch(&mut self, index: usize, count: usize) {
        self.micro = (index, count);
    }

    /// Averages the gradients over the ranks of `dist` before every step (data parallelism).
    pub fn set_dist(&mut self, dist: Dist) {
        self.dist = dist;
    }

    /// Replaces every rank's gradients by their mean over the ranks and micro-batches: one all-reduce per flat
    /// buffer. Every parameter must have a gradient on every rank (AGNAS runs every candidate at every step).
    /// [`Sgd::clip_and_step`] does it; a caller may do it first, to time it.
    pub fn average_grads(&mut self) -> crate::dist::Result<()> {
        let parts = self.dist.world() * self.micro.1;
        if parts == 1 || self.averaged {
            return Ok(());
        }
        self.averaged = true;
        self.flatten();
        let grads: Vec<Tensor> = match &self.flat {
            Flat::On(groups) => groups.iter().map(|g| g.grads.shallow_clone()).collect(),
            _ => self.params.iter().map(|(_, p)| p.grad()).filter(Tensor::defined).collect(),
        };
        self.dist.all_reduce_sum(&grads)?;
        tch::no_grad(|| {
            for mut g in grads {
                let _ = g.g_div_scalar_(parts as f64);
            }
        });
        Ok(())
    }

    /// Every rank's momentum buffers take rank 0's (after rank 0 alone read a checkpoint).
    pub fn share_momentum(&mut self) -> crate::dist::Result<()> {
        if self.dist.world() == 1 {
            return Ok(());
        }
        let has = Tensor::from_slice(&[i64::from(self.buffers.iter().any(Option::is_some))]);
        self.dist.broadcast(std::slice::from_ref(&has), 0)?;
        if has.int64_value(&[0]) == 0 {
            return Ok(());
        }
        for ((_, p), buf) in self.params.iter().zip(self.buffers.iter_mut()) {
            buf.get_or_insert_with(|| p.zeros_like());
        }
        let buffers: Vec<Tensor> = self.buffers.iter().flatten().map(Tensor::shallow_clone).collect();
        self.dist.broadcast(&buffers, 0)?;
        if matches!(self.flat, Flat::On(_)) {
            self.flat = Flat::Pending;
        }
        Ok(())
    }

    /// Averages the gradients over the ranks, clips them to `bound` (when positive) by global norm or by value, then
    /// steps.
    pub fn clip_and_step(&mut self, lr: f64, bound: f64, by: ClipBy) -> crate::dist::Result<()> {
        if self.micro.0 + 1 < self.micro.1 {
            return Ok(());
        }
        self.average_grads()?;
        self.averaged = false;
        match by {
            _ if bound <= 0.0 => {}
            ClipBy::Norm => self.clip_grad_norm(bound),
            ClipBy::Value => self.clip_grad_value(bound),
        }
        self.step(lr);
        Ok(())
    }

    pub fn step(&mut self, lr: f64) {
        self.flatten();
        let (momentum, nesterov) = (self.momentum, self.nesterov);
        tch::no_grad(|| {
            if let Flat::On(groups) = &mut self.flat {
                for group in groups.iter_mut() {
                    let fresh = momentum != 0.0 && group.momentum.is_none();
                    if fresh {
                        let flat = group.params.empty_like();
                        // Checkpoints write the momentum per parameter: views of the flat buffer.
                        for member in &group.members {
                            self.buffers[member.0] = Some(FlatGroup::view(&flat, member));
                        }
                        group.momentum = Some(flat);
                    }
                    group.step(lr, momentum, nesterov, fresh);
                }
                return;
            }
            for (((_, p), buf), &wd) in self.params.iter_mut().zip(self.buffers.iter_mut()).zip(&self.weight_decay) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let fresh = momentum != 0.0 && buf.is_none();
                let b = (momentum != 0.0).then(|| buf.get_or_insert_with(|| g.empty_like()));
                update(p, &g, b.map(|b| (b, fresh)), &mut g.empty_like(), wd, lr, momentum, nesterov);
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
                    crate::error::ensure!(
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
        crate::error::ensure!(
            saved.is_empty(),
            "{}: buffers for unknown parameters {:?}",
            path.display(),
            saved.keys()
        );
        // The loaded buffers replace any flat momentum: flatten again at the next step.
        if matches!(self.flat, Flat::On(_)) {
            self.flat = Flat::Pending;
        }
        Ok(())
    }
}

/// One SGD update of `p` in place through `scratch` (shaped like `p`), so that a flat buffer's step allocates
/// nothing. `momentum_buffer` is the buffer and whether this is its first step. The operations and their order are
/// torch's: d = g + p·wd; b = m·b + d (b = d at the first step); d = d + m·b (Nesterov) or b; p = p + d·(−lr).
#[allow(clippy::too_many_arguments)]
fn update(
    p: &mut Tensor,
    g: &Tensor,
    momentum_buffer: Option<(&mut Tensor, bool)>,
    scratch: &mut Tensor,
    wd: f64,
    lr: f64,
    momentum: f64,
    nesterov: bool,
) {
    if wd != 0.0 {
        let _ = p.mul_scalar_out(scratch, wd);
        let _ = scratch.g_add_(g);
    } else {
        scratch.copy_(g);
    }
    if let Some((b, fresh)) = momentum_buffer {
        if fresh {
            b.copy_(scratch);
        } else {
            let _ = b.g_mul_scalar_(momentum).g_add_(scratch);
        }
        if nesterov {
            let _ = scratch.g_add_(&(&*b * momentum));
        } else {
            scratch.copy_(b);
        }
    }
    let _ = scratch.g_mul_scalar_(-lr);
    let _ = p.g_add_(scratch);
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
    use std::collections::BTreeMap;
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

    /// Channels-last conv weights, two weight-decay groups, both clips and a momentum checkpoint reloaded mid-run:
    /// the flat buffers (one of them updated in two CPU chunks) give the per-tensor loop's numbers bit for bit.
    #[test]
    fn flat_buffers_change_no_number() {
        let dir = tempfile::tempdir().unwrap();
        // Drawn once for both runs: re-seeding the global generator in each would race with the other tests' draws.
        let randn = |size: &[i64]| Tensor::randn(size, (Kind::Float, Device::Cpu));
        let (conv0, bias0, fc0, x) = (randn(&[256, 3, 3, 3]), randn(&[256]), randn(&[300, 256]), randn(&[2, 3, 6, 6]));
        let run = |flat: bool| {
            let vs = nn::VarStore::new(Device::Cpu);
            let root = vs.root();
            let conv = (&root / "conv").var_copy("weight", &conv0);
            let bias = (&root / "conv").var_copy("bias", &bias0);
            let fc = (&root / "fc").var_copy("weight", &fc0);
            crate::train::settings::vars_to_channels_last(&vs);
            let build = || {
                let opt = Sgd::new(&vs, 0.9, 0.05, false).decay_only(|_, p| p.dim() == 4);
                if flat {
                    opt
                } else {
                    opt.per_tensor()
                }
            };
            let mut opt = build();
            let mut states = Vec::new();
            for step in 0..4 {
                opt.zero_grad();
                let h = x.conv2d(&conv, Some(&bias), [1, 1], [0, 0], [1, 1], 1).relu().mean_dim(
                    &[2i64, 3][..],
                    false,
                    Kind::Float,
                );
                h.matmul(&fc.tr()).pow_tensor_scalar(2).sum(Kind::Float).backward();
                if step % 2 == 0 {
                    opt.clip_grad_norm(0.5);
                } else {
                    opt.clip_grad_value(0.01);
                }
                opt.step(0.1);
                if step == 2 {
                    // Data replaced behind the optimizer's back (as `VarStore::set_kind` would): it must follow.
                    conv.shallow_clone().set_data(&conv.copy());
                }
                if step == 1 {
                    let path = dir.path().join(format!("momentum-{flat}.safetensors"));
                    opt.save(&path).unwrap();
                    opt = build();
                    opt.load(&path).unwrap();
                }
                states.push(vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect::<BTreeMap<_, _>>());
            }
            states
        };
        let (flat, per_tensor) = (run(true), run(false));
        for (step, (a, b)) in flat.iter().zip(&per_tensor).enumerate() {
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
            for (name, t) in a {
                assert!(t.equal(&b[name]), "step {step}: {name} differs");
            }
        }
        assert!(!flat[3]["conv.weight"].equal(&flat[0]["conv.weight"]), "the parameters moved");
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().var("a", &[2], nn::Init::Const(0.0));
        let b = vs.root().var("b", &[1], nn::Init::Const(0.0));
        let mut opt = Sgd::new(&vs, 0.0, 0.0, false);
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
