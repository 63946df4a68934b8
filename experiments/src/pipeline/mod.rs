//! The run directory and its resumable pieces: stage directories with atomic
//! completion markers ([`rundir`]) and append-only metrics logs ([`metrics_log`]);
//! the TOML run config ([`config`]) and the whole Section 4.1 pipeline ([`run`]) with
//! its own stages: preference data ([`prefdata`]), normalisation ([`normalize`]) and
//! reward-model evaluation ([`rm_eval`]); Section 4.2 experiments over several
//! policies and algorithms ([`experiment`]).

pub mod config;
pub mod experiment;
pub mod metrics_log;
pub mod normalize;
pub mod policy_eval;
pub mod prefdata;
pub mod rm_eval;
pub mod run;
pub mod rundir;

pub use config::RunConfig;
pub use experiment::{is_experiment, run_experiment, ExperimentConfig};
pub use metrics_log::{MetricsLog, Stepped};
pub use run::{run, RunOptions, RunSummary};
pub use rundir::{read_json, write_atomic, write_json, RunDir, StageDir, DONE_FILE};

use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// Writes one JSON value a line to `path`, atomically.
pub fn write_jsonl_atomic<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for row in rows {
        text.push_str(
            &serde_json::to_string(row)
                .map_err(|e| Error::Input(format!("{}: cannot serialise: {e}", path.display())))?,
        );
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// Reads a JSONL file written by [`write_jsonl_atomic`] (file and line named on error).
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    MetricsLog::read_all(path)
}
