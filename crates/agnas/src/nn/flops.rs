//! Multiply-accumulate counting by running a forward: every [`Conv2d`] and [`Linear`] adds its MACs while a
//! count is active on the thread, so the count follows exactly what the network executes (like thop's hooks).
use super::init::ConvSpec;
use std::cell::Cell;
use std::ops::Deref;
use tch::nn::{self, Module};
use tch::Tensor;

thread_local! {
    static MACS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` and returns its result with the MACs of the convolutions and linear layers it ran (for the whole batch).
pub fn count_macs<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let outer = MACS.with(|m| m.replace(Some(0)));
    let value = f();
    let counted = MACS.with(|m| m.replace(outer)).unwrap_or(0);
    (value, counted)
}

/// Each output element of a layer costs `per_output` MACs.
fn record(out: &Tensor, per_output: i64) {
    MACS.with(|m| {
        if let Some(n) = m.get() {
            m.set(Some(n + (out.numel() as u64) * per_output as u64));
        }
    });
}

/// A convolution that reports its MACs: `C_in/groups · k_h · k_w` per output element; with its hyper-parameters
/// (tch keeps them private), which the exporters read.
#[derive(Debug)]
pub struct Conv2d(pub nn::Conv2D, pub ConvSpec);

impl Deref for Conv2d {
    type Target = nn::Conv2D;
    fn deref(&self) -> &nn::Conv2D {
        &self.0
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let y = self.0.forward(xs);
        record(&y, self.0.ws.size()[1..].iter().product());
        y
    }
}

/// A linear layer that reports its MACs: `in_features` per output element.
#[derive(Debug)]
pub struct Linear(pub nn::Linear);

impl Deref for Linear {
    type Target = nn::Linear;
    fn deref(&self) -> &nn::Linear {
        &self.0
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let y = self.0.forward(xs);
        record(&y, self.0.ws.size()[1]);
        y
    }
}

#[cfg(test)]
mod tests {
    use super::super::init::{conv2d, linear, ConvSpec};
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn counts_follow_the_executed_layers() {
        let vs = nn::VarStore::new(Device::Cpu);
        let dw = conv2d(&vs.root() / "dw", 8, 8, 3, ConvSpec::stride(2).padding(1).groups(8));
        let fc = linear(&vs.root() / "fc", 8, 10, true);
        let x = Tensor::randn([1, 8, 16, 16], (Kind::Float, Device::Cpu));
        let (_, macs) = count_macs(|| x.apply(&dw).mean_dim([2i64, 3].as_slice(), false, Kind::Float).apply(&fc));
        // dw: 8 channels × 8×8 outputs × 9 taps; fc: 10 × 8.
        assert_eq!(macs, 8 * 64 * 9 + 80);
        let (inner, outer) = count_macs(|| {
            let (_, inner) = count_macs(|| x.apply(&dw));
            let _ = x.apply(&dw);
            inner
        });
        assert_eq!((inner, outer), (8 * 64 * 9, 8 * 64 * 9), "an inner count does not leak into the outer one");
    }
}
