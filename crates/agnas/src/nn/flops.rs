//! Multiply-accumulate counting by running a forward: every [`Conv2d`](super::layers::Conv2d) and [`Linear`](super::layers::Linear) adds its MACs while a
//! count is active on the thread, so the count follows exactly what the network executes (like thop's hooks).
use std::cell::Cell;
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
pub(super) fn record(out: &Tensor, per_output: i64) {
    MACS.with(|m| {
        if let Some(n) = m.get() {
            m.set(Some(n + (out.numel() as u64) * per_output as u64));
        }
    });
}
