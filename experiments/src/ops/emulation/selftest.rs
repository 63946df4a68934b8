//! The emulation's own checks: launches that break CUDA's execution model must stop the
//! driver with a message.

use super::driver::{self, Driver, Elem, Request};
use crate::ops::launch::{self, LaunchShape};

/// The emulation itself fails loudly where real hardware would hang or misbehave: a
/// warp exchange in a partial warp, an argument of the wrong kind, a read past a buffer,
/// a diverged warp exchange, a skipped barrier, a missing barrier.
pub(super) fn emulation_fails_loudly(driver: &Driver) {
    // block_sum over a block of 16 threads: its warp exchange has half a warp.
    let mut req = Request::default();
    let x = req.input(Elem::F32, &[1.0; 16]);
    let s = req.output(Elem::F32, 1);
    req.launch(
        "sq_norm_finish_f32",
        LaunchShape {
            grid: (1, 1, 1),
            block: (16, 1, 1),
        },
        vec![
            driver::Arg::Buffer(x),
            driver::Arg::I32(16),
            driver::Arg::Buffer(s),
        ],
    );
    let e = driver.run(&req).err().expect("a partial warp must fail");
    assert!(e.contains("only 16 of 32 lanes"), "{e}");
    // An argument of the wrong kind.
    let mut req = Request::default();
    let x = req.input(Elem::F32, &[1.0; 32]);
    req.launch(
        "sq_norm_finish_f32",
        launch::sq_norm_finish(),
        vec![
            driver::Arg::Buffer(x),
            driver::Arg::F32(1.0),
            driver::Arg::Buffer(x),
        ],
    );
    let e = driver
        .run(&req)
        .err()
        .expect("a float for an int must fail");
    assert!(e.contains("the kernel takes an int"), "{e}");
    // A count past the buffer's end.
    let mut req = Request::default();
    let x = req.input(Elem::F32, &[1.0; 32]);
    let s = req.output(Elem::F32, 1);
    req.launch(
        "sq_norm_finish_f32",
        launch::sq_norm_finish(),
        vec![
            driver::Arg::Buffer(x),
            driver::Arg::I32(5000),
            driver::Arg::Buffer(s),
        ],
    );
    let e = driver
        .run(&req)
        .err()
        .expect("reading past a buffer must fail");
    assert!(e.contains("past the end of buffer 0"), "{e}");
    // Kernels that break the model on purpose (cuda-emulation/selftest.cu).
    for (kernel, message) in [
        ("selftest_diverged_shuffle", "deadlock"),
        (
            "selftest_skipped_barrier",
            "threads of the block had exited",
        ),
        ("selftest_missing_barrier", "depends on the schedule"),
    ] {
        let mut req = Request::default();
        let out = req.output(Elem::F32, 64);
        let shape = LaunchShape {
            grid: (1, 1, 1),
            block: (64, 1, 1),
        };
        req.launch(kernel, shape, vec![driver::Arg::Buffer(out)]);
        let e = driver.run(&req).err().expect("a broken kernel must fail");
        assert!(e.contains(message), "{kernel}: {e}");
    }
}
