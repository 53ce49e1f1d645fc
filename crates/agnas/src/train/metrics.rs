//! Loss and accuracy sums over a pass, kept on the device so that a step never waits for the host.
use crate::error::{bail, Result};
use tch::{Device, Kind, Tensor};

/// Sums of loss·images, top-1 and top-5 hits, and images seen.
pub struct Totals {
    loss: Tensor,
    top1: Tensor,
    top5: Tensor,
    seen: Tensor,
}

/// The means of a [`Totals`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Means {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
    pub seen: f64,
}

const NAMES: [&str; 4] = ["loss", "correct", "correct5", "seen"];

impl Totals {
    pub fn new(device: Device) -> Self {
        let z = || Tensor::zeros([], (Kind::Double, device));
        Totals { loss: z(), top1: z(), top5: z(), seen: z() }
    }

    /// Adds one batch: `loss` is its mean over the batch.
    pub fn add(&mut self, logits: &Tensor, loss: &Tensor, y: &Tensor) {
        let n = y.size()[0] as f64;
        let _ = self.loss.g_add_(&(loss.detach().to_kind(Kind::Double) * n));
        let k = logits.size()[1].min(5);
        let (_, top) = logits.detach().topk(k, -1, true, true);
        let hits = top.eq_tensor(&y.unsqueeze(-1));
        let _ = self.top1.g_add_(&hits.select(1, 0).sum(Kind::Double));
        let _ = self.top5.g_add_(&hits.sum(Kind::Double));
        let _ = self.seen.g_add_scalar_(n);
    }

    /// The sums by name, for checkpoints.
    pub fn named(&self) -> Vec<(&'static str, &Tensor)> {
        NAMES.into_iter().zip([&self.loss, &self.top1, &self.top5, &self.seen]).collect()
    }

    /// Takes the sums out of a checkpoint's named tensors, leaving the others.
    pub fn restore(saved: &mut Vec<(String, Tensor)>, device: Device) -> Result<Self> {
        let mut totals = Totals::new(device);
        for name in NAMES {
            let Some(pos) = saved.iter().position(|(n, _)| n == name) else {
                bail!("the checkpoint has no `{name}` accumulator")
            };
            let t = saved.remove(pos).1.to_device(device);
            match name {
                "loss" => totals.loss = t,
                "correct" => totals.top1 = t,
                "correct5" => totals.top5 = t,
                _ => totals.seen = t,
            }
        }
        Ok(totals)
    }

    /// The means, read from the device at once.
    pub fn means(&self) -> Means {
        let v: Vec<f64> =
            Vec::try_from(Tensor::stack(&[&self.loss, &self.top1, &self.top5, &self.seen], 0).to_device(Device::Cpu))
                .unwrap_or_else(|_| vec![f64::NAN; 4]);
        let seen = v[3].max(1.0);
        Means { loss: v[0] / seen, top1: v[1] / seen, top5: v[2] / seen, seen: v[3] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_top5_and_mean_loss() {
        let mut t = Totals::new(Device::Cpu);
        let logits = Tensor::from_slice2(&[[0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]]);
        // Sample 0: label 5 is the top; sample 1: label 5 is the 6th → neither top-1 nor top-5.
        t.add(&logits, &Tensor::from(2.0f32), &Tensor::from_slice(&[5i64, 5]));
        t.add(&logits.narrow(0, 1, 1), &Tensor::from(4.0f32), &Tensor::from_slice(&[3i64]));
        let m = t.means();
        assert_eq!((m.seen, m.top1, m.top5), (3.0, 1.0 / 3.0, 2.0 / 3.0));
        assert!((m.loss - 8.0 / 3.0).abs() < 1e-12);
        let mut saved: Vec<(String, Tensor)> = t.named().into_iter().map(|(n, v)| (n.to_string(), v.copy())).collect();
        saved.push(("importance".into(), Tensor::zeros([2], (Kind::Double, Device::Cpu))));
        let back = Totals::restore(&mut saved, Device::Cpu).unwrap();
        assert_eq!(back.means(), m);
        assert_eq!(saved.len(), 1, "other accumulators are left in place");
    }
}
