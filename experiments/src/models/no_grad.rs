//! Inference without the autograd graph: inside [`no_grad`], the layers read their
//! weights detached ([`param`]), so no op of the forward pass records a backward node
//! and every intermediate tensor is freed as soon as the next op has used it (with the
//! graph, each output keeps its inputs alive until the last output is dropped).
//!
//! Values are the same either way: every op computes its forward pass on detached
//! inputs and only adds a backward node when an input tracks gradients. The switch is
//! per thread, so concurrent units (`exp run --jobs N`) do not see each other's.

use candle_core::Tensor;
use std::cell::Cell;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// Restores the previous state of the switch when dropped (also on an early return or
/// a panic inside [`no_grad`]).
struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(self.0));
    }
}

/// Runs `f` with the weights detached on this thread: sampling, old and reference
/// log-probabilities, reward scoring. Nests; the previous state comes back afterwards.
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let _restore = Restore(ACTIVE.with(|a| a.replace(true)));
    f()
}

/// Whether this thread is inside [`no_grad`].
pub fn is_active() -> bool {
    ACTIVE.with(Cell::get)
}

/// A weight as a layer should use it now: detached inside [`no_grad`] (a new handle on
/// the same storage, no copy), itself otherwise.
pub fn param(weight: &Tensor) -> Tensor {
    if is_active() {
        weight.detach()
    } else {
        weight.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    #[test]
    fn weights_are_detached_only_inside_and_the_state_is_restored() {
        let w = Var::ones((2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(param(w.as_tensor()).track_op());
        let inner = no_grad(|| {
            let nested = no_grad(|| param(w.as_tensor()).track_op());
            (nested, param(w.as_tensor()).track_op(), is_active())
        });
        assert_eq!(inner, (false, false, true));
        assert!(!is_active());
        assert!(param(w.as_tensor()).track_op());
        // Another thread does not see this thread's switch.
        no_grad(|| {
            let other = std::thread::scope(|s| s.spawn(is_active).join().unwrap());
            assert!(!other && is_active());
        });
    }
}
