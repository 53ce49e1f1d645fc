//! The training loss every space shares.
use tch::{Reduction, Tensor};

/// Mean cross-entropy of `logits` against class indices `y`, with label smoothing ε: the target is
/// (1 − ε)·one-hot + ε/K, as the macro search's `CrossEntropyLabelSmooth` and PyTorch's `label_smoothing` define it.
pub fn cross_entropy(logits: &Tensor, y: &Tensor, label_smoothing: f64) -> Tensor {
    if label_smoothing == 0.0 {
        // The plain path the cell spaces were measured with (golden numbers).
        return logits.cross_entropy_for_logits(y);
    }
    logits.cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, label_smoothing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Against the official formula: (−((1−ε)·onehot + ε/K) · log_softmax).mean(0).sum().
    #[test]
    fn label_smoothing_matches_the_official_criterion() {
        let logits = Tensor::randn([5, 7], (Kind::Double, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 3, 6, 2, 3]);
        let eps = 0.1;
        let onehot = Tensor::zeros([5, 7], (Kind::Double, Device::Cpu)).scatter_value(1, &y.unsqueeze(1), 1.0);
        let target = onehot * (1.0 - eps) + eps / 7.0;
        let want = (-(target * logits.log_softmax(1, Kind::Double))).mean_dim(0, false, Kind::Double).sum(Kind::Double);
        let got = cross_entropy(&logits, &y, eps);
        assert!((got.double_value(&[]) - want.double_value(&[])).abs() < 1e-12);
        let plain = cross_entropy(&logits, &y, 0.0).double_value(&[]);
        // tch's plain path takes the log-softmax in f32 whatever the input kind.
        let nll = logits.log_softmax(1, Kind::Float).nll_loss(&y).double_value(&[]);
        assert!((plain - nll).abs() < 1e-12);
    }
}
