//! Helpers shared by the end-to-end tests of the `rmteach` binary: run it, and check
//! that it succeeded.

use std::process::{Command, Output};

/// Runs the `rmteach` binary with `args` on one thread (candle's pool busy-waits).
pub fn rmteach(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rmteach"))
        .env("RAYON_NUM_THREADS", "1")
        .args(args)
        .output()
        .expect("runs")
}

/// Its standard output, after asserting it succeeded (both its outputs otherwise).
pub fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
