//! The run directory and its resumable pieces: stage directories with atomic
//! completion markers ([`rundir`]) and append-only metrics logs ([`metrics_log`]).

pub mod metrics_log;
pub mod rundir;

pub use metrics_log::{MetricsLog, Stepped};
pub use rundir::{read_json, write_atomic, write_json, RunDir, StageDir, DONE_FILE};
