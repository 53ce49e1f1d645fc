//! When a training loop reads the loss back, checkpoints and stops: the same for the search and the retrain.
use crate::error::{bail, ensure, Result};
use std::path::Path;

/// The step bookkeeping of one run.
#[derive(Debug, Clone, Copy)]
pub struct StepSchedule {
    pub steps_per_epoch: usize,
    /// Steps between mid-epoch checkpoints (0 = only at the end of each epoch).
    pub checkpoint_every: usize,
    /// Steps between host reads of the loss.
    pub sync_every: usize,
    /// Stop (as if killed) after this many steps in all; for crash tests.
    pub stop_after: Option<u64>,
}

impl StepSchedule {
    /// Whether a mid-epoch checkpoint follows step `step` (1-based within the epoch).
    pub fn checkpoint_due(&self, step: usize) -> bool {
        self.checkpoint_every > 0 && step.is_multiple_of(self.checkpoint_every) && step < self.steps_per_epoch
    }

    /// Whether the loss is read back after `step`: regularly, at the end of the epoch, and before every checkpoint,
    /// so that a checkpoint is only written once the loss it includes was seen to be finite.
    pub fn sync_due(&self, step: usize) -> bool {
        self.checkpoint_due(step) || step.is_multiple_of(self.sync_every) || step == self.steps_per_epoch
    }

    /// The error for a loss that is no longer finite, keeping the last checkpoint.
    pub fn ensure_finite(loss: f64, epoch: usize, step: usize, checkpoints: &Path) -> Result<()> {
        ensure!(
            loss.is_finite(),
            "training diverged: the loss is {loss} at epoch {} step {step} (lower train.lr?); the last checkpoint in {} \
             is kept",
            epoch + 1,
            checkpoints.display()
        );
        Ok(())
    }

    /// Stops the run when `--stop-after-steps` is reached.
    pub fn check_stop(&self, global_step: u64) -> Result<()> {
        if self.stop_after.is_some_and(|s| global_step >= s) {
            bail!("stopped after {global_step} steps as asked (--stop-after-steps)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_sync_and_stops() {
        let s = StepSchedule { steps_per_epoch: 10, checkpoint_every: 4, sync_every: 3, stop_after: Some(7) };
        let due: Vec<usize> = (1..=10).filter(|&k| s.checkpoint_due(k)).collect();
        assert_eq!(due, vec![4, 8], "no mid-epoch checkpoint at the epoch's end");
        let synced: Vec<usize> = (1..=10).filter(|&k| s.sync_due(k)).collect();
        assert_eq!(synced, vec![3, 4, 6, 8, 9, 10]);
        assert!(s.check_stop(6).is_ok() && s.check_stop(7).is_err());
        let err = StepSchedule::ensure_finite(f64::NAN, 1, 5, Path::new("run/checkpoints")).unwrap_err().to_string();
        assert!(err.contains("epoch 2 step 5") && err.contains("run/checkpoints"), "{err}");
    }
}
